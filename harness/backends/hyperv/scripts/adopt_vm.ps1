<#
.SYNOPSIS
  Adopt a VM a person installed by hand (the procedure's Step 1 as written), by its Id
  or by a name exactly one VM has (names are not unique on Hyper-V: a host that runs
  vmgenie has its base VM named after the GMI; two VMs of the name are refused, with
  their Ids). Checks, before anything is changed, that it is Generation 2 with one disk
  named '<DiskName>.vhdx' (vmgenie finds the GMI's disk by that name) and a configuration
  version no newer than MaxVersion (--hyperv-vm-version); turns automatic checkpoints
  off (where the host has them); reports it with the checkpoints the export will merge
  and the media in its DVD drives.
.EXAMPLE
  .\adopt_vm.ps1 -Name 'debian 12 by hand' -DiskName 'GMI Debian 12' -MaxVersion '8.0'
.EXAMPLE
  .\adopt_vm.ps1 -Id '5f0e6a0c-3b7e-4c55-9a57-1c2d3e4f5a6b' -DiskName 'GMI Debian 12' -MaxVersion '8.0'
#>
param(
    [string]$Name = '',
    [string]$Id = '',
    [Parameter(Mandatory)][string]$DiskName,
    [Parameter(Mandatory)][string]$MaxVersion
)
$ErrorActionPreference = 'Stop'

if ($Id) {
    $vm = Get-VM -Id $Id
} else {
    $found = @(Get-VM | Where-Object { $_.Name -ceq $Name })
    if ($found.Count -eq 0) { throw "no VM named '$Name' on this host (Get-VM lists them)" }
    if ($found.Count -gt 1) {
        throw "$($found.Count) VMs are named '$Name' (Ids $(($found | ForEach-Object { $_.Id }) -join ', ')): give --hyperv-base-vm the Id of yours"
    }
    $vm = $found[0]
}
if ($vm.Generation -ne 2) { throw "VM '$($vm.Name)' is Generation $($vm.Generation); GMIs are Generation 2 only" }
$disks = @(Get-VMHardDiskDrive -VM $vm)
if ($disks.Count -ne 1) { throw "VM '$($vm.Name)' has $($disks.Count) disks; a GMI has exactly one" }
# the disk under its checkpoints' differencing disks: what Step 6 merges them into and
# Export-VM exports (vmgenie finds it by its file name, '<GMI name>.vhdx')
$base = $disks[0].Path
while ((Get-VHD -Path $base).VhdType -eq 'Differencing') { $base = (Get-VHD -Path $base).ParentPath }
# checked before anything is changed: an export of a newer configuration version would not
# import on the hosts --hyperv-vm-version stands for; vmgenie finds the disk by its name
if ([version]$vm.Version.ToString() -gt [version]$MaxVersion) {
    throw "VM '$($vm.Name)' has configuration version $($vm.Version), newer than --hyperv-vm-version $($MaxVersion): its GMI would not import where $MaxVersion does; make it with New-VM -Version $MaxVersion, or pass --hyperv-vm-version $($vm.Version)"
}
if ((Split-Path -Leaf $base) -ne "$DiskName.vhdx") {
    throw "VM '$($vm.Name)': its disk is '$(Split-Path -Leaf $base)'; vmgenie finds the GMI's disk by its name, '$DiskName.vhdx': rename the file (VM off: Rename-Item, then Set-VMHardDiskDrive -Path) and run again"
}
if ((Get-Command Set-VM).Parameters.ContainsKey('AutomaticCheckpointsEnabled')) {
    $vm | Set-VM -AutomaticCheckpointsEnabled $false
}
[pscustomobject]@{
    Name        = $vm.Name
    Id          = $vm.Id.ToString()
    Generation  = $vm.Generation
    Version     = $vm.Version.ToString()
    State       = $vm.State.ToString()
    Vhdx        = $disks[0].Path
    BaseVhdx    = $base
    Notes       = $vm.Notes
    Checkpoints = @(Get-VMSnapshot -VM $vm | ForEach-Object { $_.Name })
    DvdPaths    = @(Get-VMDvdDrive -VM $vm | ForEach-Object { [string]$_.Path })
} | ConvertTo-Json -Depth 3 -Compress
