<#
.SYNOPSIS
  A validation clone made the way vmgenie makes VMs from a GMI: a copy of the sealed
  VHDX in a brand-new Generation 2 VM (fresh UEFI variables), Secure Boot with the
  distro's template (or off), the seed ISO (cidata) in the DVD drive, booting from the
  disk. Started. The run's tag goes into the Notes right after New-VM; if a later step
  fails the VM is turned off and removed again.
.EXAMPLE
  .\new_clone_vm.ps1 -Name 'gmi-clone run1' -Folder 'D:\VHD\gmi-harness-run1' -SourceVhdx 'D:\VHD\gmi-harness-run1\gmi\Virtual Hard Disks\GMI Debian 12.vhdx' `
      -SeedIso 'D:\VHD\gmi-harness-run1\clone-seed.iso' -SwitchName 'External' -Notes 'gmi-harness run=...'
#>
param(
    [Parameter(Mandatory)][string]$Name,
    [Parameter(Mandatory)][string]$Folder,
    [Parameter(Mandatory)][string]$SourceVhdx,
    [Parameter(Mandatory)][string]$SeedIso,
    [Parameter(Mandatory)][string]$SwitchName,
    [int]$MemoryMB = 2048,
    [int]$ProcessorCount = 2,
    [bool]$SecureBoot = $true,
    [string]$SecureBootTemplate = 'MicrosoftUEFICertificateAuthority',
    [Parameter(Mandatory)][string]$Notes
)
$ErrorActionPreference = 'Stop'

if (Get-VM -Name $Name -ErrorAction SilentlyContinue) { throw "a VM named '$Name' already exists on this host" }
$vhdx = Join-Path $Folder "$Name.vhdx"
Copy-Item -LiteralPath $SourceVhdx -Destination $vhdx
$vm = New-VM -Name $Name -Generation 2 -MemoryStartupBytes ([long]$MemoryMB * 1MB) -VHDPath $vhdx `
    -SwitchName $SwitchName -Path $Folder
# The run's tag first and alone: a VM without it is invisible to clean-up and the janitor.
$vm | Set-VM -Notes $Notes
try {
    $vm | Set-VM -ProcessorCount $ProcessorCount -AutomaticCheckpointsEnabled $false
    if ($SecureBoot) {
        $vm | Set-VMFirmware -EnableSecureBoot On -SecureBootTemplate $SecureBootTemplate
    } else {
        $vm | Set-VMFirmware -EnableSecureBoot Off
    }
    Add-VMDvdDrive -VM $vm -Path $SeedIso
    $vm | Set-VMFirmware -FirstBootDevice (Get-VMHardDiskDrive -VM $vm)
    Start-VM -VM $vm
} catch {
    # Half-made: take the VM away again (its disk copy is removed with the run's files).
    Stop-VM -VM $vm -TurnOff -Force -ErrorAction SilentlyContinue
    Remove-VM -VM $vm -Force -ErrorAction SilentlyContinue
    throw
}
[pscustomobject]@{
    Name  = $vm.Name
    Id    = $vm.Id.ToString()
    Vhdx  = $vhdx
    State = (Get-VM -Name $Name).State.ToString()
} | ConvertTo-Json -Compress
