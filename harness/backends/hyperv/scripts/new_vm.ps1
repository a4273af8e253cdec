<#
.SYNOPSIS
  Step 1 of the GMI procedure, the wizard's settings exactly: a Generation 2 VM named
  after the GMI, 4096 MB of startup memory with dynamic memory on (the wizard's range:
  minimum 512 MB, maximum 1 TB), a virtual switch, a new dynamic VHDX named
  like the VM (or a copy of a base VHDX), Secure Boot with the distro's template (or
  off), no TPM, no shielding, automatic checkpoints off, the install ISO in a DVD drive
  (and the answer media in a second one), booting from the DVD first. Not started.
  The run's tag goes into the VM's Notes right after New-VM, alone: if anything after it
  fails, the VM is turned off and removed here, and if even that fails the tag lets the
  harness's clean-up and the janitor find it.
  With -UseVhdx (--promote: the disk of a disk-only GMI, uploaded into the run's folder
  as '<Folder>\<Name>.vhdx'), that disk is attached as it is: no copy, no new disk, no
  DVD drive, booting from the disk. The VM is never started here.
.EXAMPLE
  .\new_vm.ps1 -Name 'GMI Debian 12' -Folder 'D:\VHD\gmi-harness-run1' -SwitchName 'External' `
      -SizeBytes 268435456000 -MemoryMB 4096 -DynamicMemory $true -SecureBoot $true `
      -SecureBootTemplate 'MicrosoftUEFICertificateAuthority' -InstallIso 'D:\iso\debian.iso' `
      -Notes 'gmi-harness run=20261126-0700 ...'
.EXAMPLE
  .\new_vm.ps1 -Name 'GMI Debian 12' -Folder 'D:\VHD\gmi-harness-run1' -SwitchName 'External' `
      -UseVhdx 'D:\VHD\gmi-harness-run1\GMI Debian 12.vhdx' -Notes 'gmi-harness run=20261126-0700 ...'
#>
param(
    [Parameter(Mandatory)][string]$Name,
    [Parameter(Mandatory)][string]$Folder,
    [Parameter(Mandatory)][string]$SwitchName,
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

if (Get-VM -Name $Name -ErrorAction SilentlyContinue) {
    throw "a VM named '$Name' already exists on this host; remove or rename it (or adopt it with --hyperv-base-vm)"
}
$vhdx = Join-Path $Folder "$Name.vhdx"
if ($UseVhdx) {
    # vmgenie needs the disk named after the VM: it must already be '<Folder>\<Name>.vhdx'
    if ($UseVhdx -ne $vhdx) { throw "-UseVhdx must be '$vhdx' (the disk named after the VM), not '$UseVhdx'" }
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
$vm = New-VM -Name $Name -Generation 2 -MemoryStartupBytes $memory -VHDPath $vhdx `
    -SwitchName $SwitchName -Path $Folder
$vm | Set-VM -Notes $Notes
try {
    $vm | Set-VM -ProcessorCount $ProcessorCount -AutomaticCheckpointsEnabled $false `
        -CheckpointType Standard
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
    $vm | Set-VMFirmware -BootOrder $bootOrder
} catch {
    # Half-made: take the VM away again (its disk is in the run's folder), then fail.
    Stop-VM -VM $vm -TurnOff -Force -ErrorAction SilentlyContinue
    Remove-VM -VM $vm -Force -ErrorAction SilentlyContinue
    throw
}
$vm = Get-VM -Name $Name
$firmware = Get-VMFirmware -VM $vm
[pscustomobject]@{
    Name                        = $vm.Name
    Id                          = $vm.Id.ToString()
    Generation                  = $vm.Generation
    State                       = $vm.State.ToString()
    Vhdx                        = $vhdx
    SecureBoot                  = $firmware.SecureBoot.ToString()
    SecureBootTemplate          = $firmware.SecureBootTemplate
    AutomaticCheckpointsEnabled = $vm.AutomaticCheckpointsEnabled
    DynamicMemoryEnabled        = $vm.DynamicMemoryEnabled
    MemoryStartup               = $vm.MemoryStartup
    MemoryMaximum               = $vm.MemoryMaximum
    BootOrder                   = @($firmware.BootOrder | ForEach-Object { $_.BootType.ToString() })
} | ConvertTo-Json -Depth 4 -Compress
