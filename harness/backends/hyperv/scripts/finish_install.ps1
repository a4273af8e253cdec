<#
.SYNOPSIS
  After the unattended install powered the VM off: empty the DVD drives (install ISO
  and answer media) and boot from the disk first.
.EXAMPLE
  .\finish_install.ps1 -Name 'GMI Debian 12'
#>
param(
    [Parameter(Mandatory)][string]$Name
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
if (-not $vm) { throw "no VM named '$Name' on this host" }
if ($vm.State -ne 'Off') { throw "VM '$Name' is $($vm.State), not Off: the installer did not power it off" }
Get-VMDvdDrive -VM $vm | Set-VMDvdDrive -Path $null
$disk = Get-VMHardDiskDrive -VM $vm | Select-Object -First 1
$vm | Set-VMFirmware -FirstBootDevice $disk
[pscustomobject]@{ Name = $vm.Name; FirstBootDevice = $disk.Path } | ConvertTo-Json -Compress
