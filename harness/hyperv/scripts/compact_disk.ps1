<#
.SYNOPSIS
  Step 6 on the host, for a VM that is off: merge every differencing disk (.avhdx) into
  its parent (Hyper-V Manager's Edit Disk -> Merge -> "To the parent virtual hard
  disk"), point the VM at the merged disk, then Optimize-VHD -Mode Full. Reports the
  file size before and after.
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
    # Removing the checkpoints merges their .avhdx into the parent.
    $checkpoints | Remove-VMSnapshot
    while ((Get-VM -Name $Name).Status -match 'Merging') { Start-Sleep -Seconds 2 }
    $path = (Get-VMHardDiskDrive -VM $vm | Select-Object -First 1).Path
}
while ((Get-VHD -Path $path).VhdType -eq 'Differencing') {
    $parent = (Get-VHD -Path $path).ParentPath
    Merge-VHD -Path $path -DestinationPath $parent
    $merged += $path
    $path = $parent
}
if ($merged.Count -gt 0) {
    Set-VMHardDiskDrive -VMHardDiskDrive $drive -Path $path
}
$before = (Get-Item -LiteralPath $path).Length
Optimize-VHD -Path $path -Mode Full
$vhd = Get-VHD -Path $path
[pscustomobject]@{
    Path        = $path
    Merged      = $merged
    BytesBefore = $before
    BytesAfter  = (Get-Item -LiteralPath $path).Length
    VirtualSize = $vhd.Size
    VhdType     = $vhd.VhdType.ToString()
} | ConvertTo-Json -Compress
