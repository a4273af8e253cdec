<#
.SYNOPSIS
  Power a VM on and, when keys are given, type the boot command at its boot menu
  through the VM's Msvm_Keyboard (as Packer does). Typing starts here on the host,
  right after Start-VM, with no round trip: a Generation 2 VM reaches its boot menu in
  a few seconds.
  Each key action is a hashtable: @{ Kind = 'text'|'key'|'scancodes'|'wait'; Value = ... }
  text: ASCII typed with TypeText (at most 512 characters per action: TypeText's limit;
  the harness splits longer runs), here in groups of at most 32 characters 100 ms apart
  (unpaced long runs lose keystrokes right after power-on: hashicorp/packer#5291); key: a
  Windows virtual-key code (TypeKey); scancodes: a list of bytes (TypeScancodes); wait:
  milliseconds. A method returns 0 (done) or 4096 (job started): both are success.
  Arrow and navigation keys arrive at a Generation 2 VM's GRUB as numpad digits
  (hashicorp/packer#10882): no boot command here uses them.
.EXAMPLE
  .\start_vm.ps1 -Id '5f0e6a0c-3b7e-4c55-9a57-1c2d3e4f5a6b' -BootWaitMs 5000 -Keys @(@{Kind='key';Value=27}, @{Kind='text';Value='auto url=...'}, @{Kind='key';Value=13})
#>
param(
    [Parameter(Mandatory)][string]$Id,
    [int]$BootWaitMs = 0,
    [object[]]$Keys = @()
)
$ErrorActionPreference = 'Stop'

function Send-Keys([object]$Keyboard, [string]$Method, [hashtable]$Arguments) {
    $result = Invoke-CimMethod -InputObject $Keyboard -MethodName $Method -Arguments $Arguments
    # 0: done; 4096: the method started a job (Msvm_Keyboard's reference)
    if ($result.ReturnValue -ne 0 -and $result.ReturnValue -ne 4096) {
        throw "Msvm_Keyboard.$Method returned $($result.ReturnValue) on VM '$($vm.Name)'"
    }
    Start-Sleep -Milliseconds 100
}

$vm = Get-VM -Id $Id
if ($vm.State -ne 'Running') { Start-VM -VM $vm }
$typed = 0
if ($Keys.Count -gt 0) {
    Start-Sleep -Milliseconds $BootWaitMs
    # the VM's own instance only (its Name is the VM's Id, a GUID): not every VM's
    $system = Get-CimInstance -Namespace 'root\virtualization\v2' -ClassName 'Msvm_ComputerSystem' `
        -Filter "Name = '$($vm.Id.ToString().ToUpperInvariant())'"
    $keyboard = Get-CimAssociatedInstance -InputObject $system -ResultClassName 'Msvm_Keyboard' |
        Select-Object -First 1
    if (-not $keyboard) { throw "VM '$($vm.Name)' has no Msvm_Keyboard to type the boot command with" }
    foreach ($key in $Keys) {
        $kind = [string]$key.Kind
        switch ($kind) {
            'wait' { Start-Sleep -Milliseconds ([int]$key.Value); continue }
            'text' {
                $text = [string]$key.Value
                if ($text.Length -gt 512) { throw "a text action of $($text.Length) characters; Msvm_Keyboard.TypeText takes at most 512 (split it)" }
                for ($i = 0; $i -lt $text.Length; $i += 32) {
                    Send-Keys $keyboard 'TypeText' @{ asciiText = $text.Substring($i, [Math]::Min(32, $text.Length - $i)) }
                }
            }
            'key' { Send-Keys $keyboard 'TypeKey' @{ keyCode = [uint32]$key.Value } }
            'scancodes' { Send-Keys $keyboard 'TypeScancodes' @{ scancodes = [byte[]]$key.Value } }
            default { throw "unknown key action '$kind' (text, key, scancodes or wait)" }
        }
        if ($kind -ne 'wait') { $typed++ }
    }
}
[pscustomobject]@{ Name = $vm.Name; State = (Get-VM -Id $Id).State.ToString(); Typed = $typed } |
    ConvertTo-Json -Compress
