<#
.SYNOPSIS
  Step 1 of the GMI procedure, the wizard's settings: a Generation 2 VM of the given
  configuration version, 4096 MB of startup memory with dynamic memory on (the wizard's
  range: minimum 512 MB, maximum 1 TB), a virtual switch, a new dynamic VHDX named after
  the GMI ('<DiskName>.vhdx', what vmgenie's import looks for), or a copy of a base
  VHDX, Secure Boot with the distro's template (or off), no TPM, no shielding, no
  checkpoints (automatic ones off where the host has them), shut down (not saved) when
  the host stops and never started with it, the install ISO in a DVD drive (and the
  answer media in a second one), booting from the DVD first. Not started.
  The VM's Name is the build's own (unique: a host that runs vmgenie already has a VM
  named after the GMI, its base VM); every later script finds the VM by its Id.
  The run's tag goes into the VM's Notes right after New-VM, alone: if anything after it
  fails, the VM is turned off and removed here, and if even that fails the tag lets the
  harness's clean-up and the janitor find it.
  With -UseVhdx (--promote: the disk of a disk-only GMI, uploaded into the run's folder
  as '<Folder>\<DiskName>.vhdx'), that disk is attached as it is: no copy, no new disk,
  no DVD drive, booting from the disk. The VM is never started here.
.EXAMPLE
  .\new_vm.ps1 -Name 'GMI Debian 12 (gmi-harness 20261126-0700 main)' -DiskName 'GMI Debian 12' `
      -Folder 'D:\VHD\gmi-harness-run1' -SwitchName 'External' -Version '8.0' `
      -SizeBytes 268435456000 -MemoryMB 4096 -DynamicMemory $true -SecureBoot $true `
      -SecureBootTemplate 'MicrosoftUEFICertificateAuthority' -InstallIso 'D:\iso\debian.iso' `
      -Notes 'gmi-harness run=20261126-0700 ...'
.EXAMPLE
  .\new_vm.ps1 -Name 'GMI Debian 12 (gmi-harness 20261126-0700 main)' -DiskName 'GMI Debian 12' `
      -Folder 'D:\VHD\gmi-harness-run1' -SwitchName 'External' -Version '8.0' `
      -UseVhdx 'D:\VHD\gmi-harness-run1\GMI Debian 12.vhdx' -Notes 'gmi-harness run=20261126-0700 ...'
#>
param(
    [Parameter(Mandatory)][string]$Name,
    [Parameter(Mandatory)][string]$DiskName,
    [Parameter(Mandatory)][string]$Folder,
    [Parameter(Mandatory)][string]$SwitchName,
    [Parameter(Mandatory)][string]$Version,
    [long]$SizeBytes = 0,
    [string]$BaseVhdx = '',
    [string]$UseVhdx = '',
    [int]$MemoryMB = 4096,
    [bool]$DynamicMemory = $true,
    [int]$ProcessorCount = 2,
    [bool]$SecureBoot = $true,
    [string]$SecureBootTemplate = 'MicrosoftUEFICertificateAuthority',
    [int]$BlockSizeMiB = 0,
    [string]$InstallIso = '',
    [string]$AnswerIso = '',
    [Parameter(Mandatory)][string]$Notes
)
$ErrorActionPreference = 'Stop'

$vhdx = [IO.Path]::GetFullPath((Join-Path $Folder "$DiskName.vhdx"))
if ($UseVhdx) {
    # vmgenie needs the disk named after the GMI: it must already be '<Folder>\<DiskName>.vhdx'
    if ([IO.Path]::GetFullPath($UseVhdx) -ne $vhdx) { throw "-UseVhdx must be '$vhdx' (the disk named after the GMI), not '$UseVhdx'" }
    if (-not (Test-Path -LiteralPath $UseVhdx -PathType Leaf)) { throw "no disk at $UseVhdx" }
    if ($BaseVhdx -or $InstallIso -or $AnswerIso) { throw '-UseVhdx attaches a finished disk: no -BaseVhdx, -InstallIso or -AnswerIso with it' }
} elseif ($BaseVhdx) {
    Copy-Item -LiteralPath $BaseVhdx -Destination $vhdx
} else {
    $vhdArgs = @{ Path = $vhdx; SizeBytes = $SizeBytes; Dynamic = $true }
    if ($BlockSizeMiB -gt 0) { $vhdArgs.BlockSizeBytes = [uint32]$BlockSizeMiB * 1MB }
    New-VHD @vhdArgs | Out-Null
}
$memory = [long]$MemoryMB * 1MB
$vm = New-VM -Name $Name -Generation 2 -Version $Version -MemoryStartupBytes $memory -VHDPath $vhdx `
    -SwitchName $SwitchName -Path $Folder
$vm | Set-VM -Notes $Notes
try {
    $vm | Set-VM -ProcessorCount $ProcessorCount -CheckpointType Disabled -AutomaticStopAction ShutDown `
        -AutomaticStartAction Nothing
    # Automatic checkpoints came with Windows 10 1709 / Server 1709: Server 2016 has no such setting.
    if ((Get-Command Set-VM).Parameters.ContainsKey('AutomaticCheckpointsEnabled')) {
        $vm | Set-VM -AutomaticCheckpointsEnabled $false
    }
    if ($DynamicMemory) {
        $vm | Set-VMMemory -DynamicMemoryEnabled $true -StartupBytes $memory -MinimumBytes 512MB -MaximumBytes 1TB
    } else {
        $vm | Set-VMMemory -DynamicMemoryEnabled $false -StartupBytes $memory
    }
    if ($SecureBoot) {
        $vm | Set-VMFirmware -EnableSecureBoot On -SecureBootTemplate $SecureBootTemplate
    } else {
        $vm | Set-VMFirmware -EnableSecureBoot Off
    }
    # No TPM, no shielding: a new VM has neither; say so in the result, checked below.
    $security = Get-VMSecurity -VM $vm
    if ($security.TpmEnabled -or $security.Shielded) {
        throw "the new VM '$Name' has a TPM or shielding enabled by host policy; turn it off"
    }
    $disk = Get-VMHardDiskDrive -VM $vm
    $bootOrder = @()
    if ($InstallIso) {
        $dvd = Add-VMDvdDrive -VM $vm -Path $InstallIso -Passthru
        $bootOrder += $dvd
    }
    if ($AnswerIso) {
        Add-VMDvdDrive -VM $vm -Path $AnswerIso | Out-Null
    }
    $bootOrder += $disk
    # Replaces the whole boot order: the network entry New-VM made is gone after this.
    $vm | Set-VMFirmware -BootOrder $bootOrder
} catch {
    # Half-made: take the VM away again (its disk is in the run's folder), then fail.
    Stop-VM -VM $vm -TurnOff -Force -ErrorAction SilentlyContinue
    Remove-VM -VM $vm -Force -ErrorAction SilentlyContinue
    throw
}
$vm = Get-VM -Id $vm.Id
$firmware = Get-VMFirmware -VM $vm
[pscustomobject]@{
    Name                        = $vm.Name
    Id                          = $vm.Id.ToString()
    Version                     = $vm.Version.ToString()
    Generation                  = $vm.Generation
    State                       = $vm.State.ToString()
    Vhdx                        = $vhdx
    SecureBoot                  = $firmware.SecureBoot.ToString()
    SecureBootTemplate          = $firmware.SecureBootTemplate
    CheckpointType              = $vm.CheckpointType.ToString()
    AutomaticStopAction         = $vm.AutomaticStopAction.ToString()
    DynamicMemoryEnabled        = $vm.DynamicMemoryEnabled
    MemoryStartup               = $vm.MemoryStartup
    MemoryMaximum               = $vm.MemoryMaximum
    BootOrder                   = @($firmware.BootOrder | ForEach-Object { $_.BootType.ToString() })
} | ConvertTo-Json -Depth 4 -Compress
