<#
.SYNOPSIS
  Power a VM on and, when keys are given, type the boot command at its boot menu
  through the VM's Msvm_Keyboard (as Packer does). Typing starts here on the host,
  right after Start-VM, with no round trip: a Generation 2 VM reaches its boot menu in
  a few seconds.
  Each key action is a hashtable: @{ Kind = 'text'|'key'|'scancodes'|'wait'; Value = ... }
  text: ASCII typed with TypeText, at most 512 characters per action (TypeText's limit;
  the harness splits longer runs); key: a Windows virtual-key code (TypeKey);
  scancodes: a list of bytes (TypeScancodes); wait: milliseconds.
.EXAMPLE
  .\start_vm.ps1 -Name 'GMI Debian 12' -BootWaitMs 5000 -Keys @(@{Kind='key';Value=27}, @{Kind='text';Value='auto url=...'}, @{Kind='key';Value=13})
#>
param(
    [Parameter(Mandatory)][string]$Name,
    [int]$BootWaitMs = 0,
    [object[]]$Keys = @()
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
if (-not $vm) { throw "no VM named '$Name' on this host" }
if ($vm.State -ne 'Running') { Start-VM -VM $vm }
$typed = 0
if ($Keys.Count -gt 0) {
    Start-Sleep -Milliseconds $BootWaitMs
    # the VM's own instance only (its Name is the VM's Id, a GUID): not every VM's
    $system = Get-CimInstance -Namespace 'root\virtualization\v2' -ClassName 'Msvm_ComputerSystem' `
        -Filter "Name = '$($vm.Id.ToString().ToUpperInvariant())'"
    $keyboard = Get-CimAssociatedInstance -InputObject $system -ResultClassName 'Msvm_Keyboard'
    if (-not $keyboard) { throw "VM '$Name' has no Msvm_Keyboard to type the boot command with" }
    foreach ($key in $Keys) {
        $kind = [string]$key.Kind
        switch ($kind) {
            'wait' { Start-Sleep -Milliseconds ([int]$key.Value); $call = $null }
            'text' {
                $text = [string]$key.Value
                if ($text.Length -gt 512) { throw "a text action of $($text.Length) characters; Msvm_Keyboard.TypeText takes at most 512 (split it)" }
                $call = @{ MethodName = 'TypeText'; Arguments = @{ asciiText = $text } }
            }
            'key' { $call = @{ MethodName = 'TypeKey'; Arguments = @{ keyCode = [uint32]$key.Value } } }
            'scancodes' { $call = @{ MethodName = 'TypeScancodes'; Arguments = @{ scancodes = [byte[]]$key.Value } } }
            default { throw "unknown key action '$kind' (text, key, scancodes or wait)" }
        }
        if ($call) {
            $result = Invoke-CimMethod -InputObject $keyboard @call
            if ($result.ReturnValue -ne 0) {
                throw "Msvm_Keyboard.$($call.MethodName) returned $($result.ReturnValue) on VM '$Name'"
            }
            $typed++
        }
    }
}
[pscustomobject]@{ Name = $vm.Name; State = (Get-VM -Name $Name).State.ToString(); Typed = $typed } |
    ConvertTo-Json -Compress
