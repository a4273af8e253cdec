<#
.SYNOPSIS
  Step 6 on the host, for a VM that is off: merge every differencing disk (.avhdx) into
  its parent (Hyper-V Manager's Edit Disk -> Merge -> "To the parent virtual hard
  disk"), point the VM at the merged disk, then Optimize-VHD -Mode Full with the VHDX
  attached read-only (unattached, Hyper-V runs "Full" as Prezeroed). Right after a VM
  turns off its worker process may hold the disk a moment: attaching and optimizing
  are tried 5 times, 2 s apart. When the account may not attach disks (the disk is not
  in use, yet Mount-VHD fails), it runs Prezeroed and says so (OptimizeMode,
  MountError); a disk still in use after 10 s fails the step. Reports the file size
  before and after.
.EXAMPLE
  .\compact_disk.ps1 -Id '5f0e6a0c-3b7e-4c55-9a57-1c2d3e4f5a6b'
#>
param(
    [Parameter(Mandatory)][string]$Id
)
$ErrorActionPreference = 'Stop'

function Test-InUse([string]$Path) {
    try { [IO.File]::Open($Path, 'Open', 'Read', 'None').Dispose(); return $false } catch [IO.IOException] { return $true }
}

$vm = Get-VM -Id $Id
if ($vm.State -ne 'Off') { throw "VM '$($vm.Name)' is $($vm.State); compacting needs it Off" }
$drive = Get-VMHardDiskDrive -VM $vm | Select-Object -First 1
$path = $drive.Path
$merged = @()
$checkpointNames = @()
$checkpoints = @(Get-VMSnapshot -VM $vm)
if ($checkpoints.Count -gt 0) {
    # Removing the checkpoints merges their .avhdx into the parent, in the background,
    # and the merge may not have begun when Remove-VMSnapshot returns: wait until the VM
    # is not merging AND its disk is no longer an .avhdx.
    $checkpointNames = @($checkpoints | ForEach-Object { $_.Name })
    $checkpoints | Remove-VMSnapshot -Confirm:$false
    $deadline = (Get-Date).AddHours(2)
    do {
        Start-Sleep -Seconds 2
        $current = Get-VM -Id $Id
        $path = (Get-VMHardDiskDrive -VM $current | Select-Object -First 1).Path
        $merging = ([string]$current.Status -match 'Merging') -or ([string]$current.OperationalStatus -match 'Merging')
        if ((Get-Date) -gt $deadline) { throw "VM '$($vm.Name)' still merges its checkpoints after 2 hours (disk $path)" }
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
for ($try = 1; ; $try++) {
    try {
        Mount-VHD -Path $path -ReadOnly -NoDriveLetter
        break
    } catch {
        $mountError = "$_"
        if ($try -ge 5) {
            if (Test-InUse $path) { throw "the disk $path is still in use 10 s after the VM stopped: $mountError" }
            $mode = 'Prezeroed'
            break
        }
        Start-Sleep -Seconds 2
    }
}
if ($mode -eq 'Full') { $mountError = '' }
try {
    for ($try = 1; ; $try++) {
        try { Optimize-VHD -Path $path -Mode $mode; break } catch { if ($try -ge 5) { throw }; Start-Sleep -Seconds 2 }
    }
} finally {
    if ($mode -eq 'Full') { Dismount-VHD -Path $path }
}
$vhd = Get-VHD -Path $path
[pscustomobject]@{
    Path        = $path
    Merged      = $merged
    Checkpoints = $checkpointNames
    BytesBefore = $before
    BytesAfter  = (Get-Item -LiteralPath $path).Length
    VirtualSize = $vhd.Size
    VhdType     = $vhd.VhdType.ToString()
    OptimizeMode = $mode
    MountError  = $mountError
} | ConvertTo-Json -Compress
