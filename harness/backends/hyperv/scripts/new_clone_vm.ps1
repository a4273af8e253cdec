<#
.SYNOPSIS
  A validation clone made the way vmgenie makes VMs from a GMI (its ProvisionVm): a copy
  of the sealed VHDX in a brand-new Generation 2 VM (fresh UEFI variables, the host's
  default configuration version, as vmgenie's New-VM), vmgenie's shape by default (1
  vCPU, 512 MB static memory, Secure Boot on with MicrosoftUEFICertificateAuthority),
  the seed ISO (cidata) in the DVD drive, booting from the disk. No checkpoints, shut
  down (not saved) with the host, never started with it. Started. The run's tag goes
  into the Notes right after New-VM; if a later step fails the VM is turned off and
  removed again.
.EXAMPLE
  .\new_clone_vm.ps1 -Name 'gmi-clone debian-12 run1' -Folder 'D:\VHD\gmi-harness-run1' -SourceVhdx 'D:\VHD\gmi-harness-run1\gmi\Virtual Hard Disks\GMI Debian 12.vhdx' `
      -SeedIso 'D:\VHD\gmi-harness-run1\clone-seed.iso' -SwitchName 'External' -MemoryMB 512 -ProcessorCount 1 -Notes 'gmi-harness run=...'
#>
param(
    [Parameter(Mandatory)][string]$Name,
    [Parameter(Mandatory)][string]$Folder,
    [Parameter(Mandatory)][string]$SourceVhdx,
    [Parameter(Mandatory)][string]$SeedIso,
    [Parameter(Mandatory)][string]$SwitchName,
    [int]$MemoryMB = 512,
    [int]$ProcessorCount = 1,
    [bool]$SecureBoot = $true,
    [string]$SecureBootTemplate = 'MicrosoftUEFICertificateAuthority',
    [Parameter(Mandatory)][string]$Notes
)
$ErrorActionPreference = 'Stop'

$vhdx = Join-Path $Folder "$Name.vhdx"
Copy-Item -LiteralPath $SourceVhdx -Destination $vhdx
$memory = [long]$MemoryMB * 1MB
$vm = New-VM -Name $Name -Generation 2 -MemoryStartupBytes $memory -VHDPath $vhdx `
    -SwitchName $SwitchName -Path $Folder
# The run's tag first and alone: a VM without it is invisible to clean-up and the janitor.
$vm | Set-VM -Notes $Notes
try {
    $vm | Set-VM -ProcessorCount $ProcessorCount -CheckpointType Disabled -AutomaticStopAction ShutDown `
        -AutomaticStartAction Nothing
    if ((Get-Command Set-VM).Parameters.ContainsKey('AutomaticCheckpointsEnabled')) {
        $vm | Set-VM -AutomaticCheckpointsEnabled $false
    }
    $vm | Set-VMMemory -DynamicMemoryEnabled $false -StartupBytes $memory
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
$vm = Get-VM -Id $vm.Id
[pscustomobject]@{
    Name           = $vm.Name
    Id             = $vm.Id.ToString()
    Vhdx           = $vhdx
    State          = $vm.State.ToString()
    ProcessorCount = $vm.ProcessorCount
    MemoryStartup  = $vm.MemoryStartup
    DynamicMemoryEnabled = $vm.DynamicMemoryEnabled
} | ConvertTo-Json -Compress
