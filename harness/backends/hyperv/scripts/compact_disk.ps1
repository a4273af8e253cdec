<#
.SYNOPSIS
  Step 6 on the host, for a VM that is off: merge every differencing disk (.avhdx) into
  its parent (Hyper-V Manager's Edit Disk -> Merge -> "To the parent virtual hard
  disk"), point the VM at the merged disk, then Optimize-VHD -Mode Full with the VHDX
  attached read-only (unattached, Hyper-V runs "Full" as Prezeroed). When the account
  may not attach disks, it runs Prezeroed and says so (OptimizeMode, MountError).
  Reports the file size before and after.
.EXAMPLE
  .\compact_disk.ps1 -Name 'GMI Debian 12'
#>
param(
    [Parameter(Mandatory)][string]$Name
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
if (-not $vm) { throw "no VM named '$Name' on this host" }
if ($vm.State -ne 'Off') { throw "VM '$Name' is $($vm.State); compacting needs it Off" }
$drive = Get-VMHardDiskDrive -VM $vm | Select-Object -First 1
$path = $drive.Path
$merged = @()
$checkpoints = @(Get-VMSnapshot -VM $vm)
if ($checkpoints.Count -gt 0) {
    # Removing the checkpoints merges their .avhdx into the parent, in the background,
    # and the merge may not have begun when Remove-VMSnapshot returns: wait until the VM
    # is not merging AND its disk is no longer an .avhdx.
    $checkpoints | Remove-VMSnapshot -Confirm:$false
    $deadline = (Get-Date).AddHours(2)
    do {
        Start-Sleep -Seconds 2
        $current = Get-VM -Name $Name
        $path = (Get-VMHardDiskDrive -VM $current | Select-Object -First 1).Path
        $merging = ([string]$current.Status -match 'Merging') -or ([string]$current.OperationalStatus -match 'Merging')
        if ((Get-Date) -gt $deadline) { throw "VM '$Name' still merges its checkpoints after 2 hours (disk $path)" }
    } while ($merging -or $path -like '*.avhdx')
}
while ((Get-VHD -Path $path).VhdType -eq 'Differencing') {
    $parent = (Get-VHD -Path $path).ParentPath
    Merge-VHD -Path $path -DestinationPath $parent -Confirm:$false
    $merged += $path
    $path = $parent
}
if ($merged.Count -gt 0) {
    Set-VMHardDiskDrive -VMHardDiskDrive $drive -Path $path
}
$before = (Get-Item -LiteralPath $path).Length
# "Full" is Full only on a VHDX attached read-only (Microsoft Learn, Optimize-VHD,
# example 1); attaching needs rights the account may lack: then Prezeroed, reported.
$mode = 'Full'
$mountError = ''
try {
    Mount-VHD -Path $path -ReadOnly -NoDriveLetter
} catch {
    $mode = 'Prezeroed'
    $mountError = "$_"
}
try {
    Optimize-VHD -Path $path -Mode $mode
} finally {
    if ($mode -eq 'Full') { Dismount-VHD -Path $path }
}
$vhd = Get-VHD -Path $path
[pscustomobject]@{
    Path        = $path
    Merged      = $merged
    BytesBefore = $before
    BytesAfter  = (Get-Item -LiteralPath $path).Length
    VirtualSize = $vhd.Size
    VhdType     = $vhd.VhdType.ToString()
    OptimizeMode = $mode
    MountError  = $mountError
} | ConvertTo-Json -Compress
