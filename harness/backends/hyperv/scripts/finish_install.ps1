<#
.SYNOPSIS
  After the unattended install powered the VM off: empty the DVD drives (install ISO
  and answer media) and boot from the disk first.
.EXAMPLE
  .\finish_install.ps1 -Id '5f0e6a0c-3b7e-4c55-9a57-1c2d3e4f5a6b'
#>
param(
    [Parameter(Mandatory)][string]$Id
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Id $Id
if ($vm.State -ne 'Off') { throw "VM '$($vm.Name)' is $($vm.State), not Off: the installer did not power it off" }
Get-VMDvdDrive -VM $vm | Set-VMDvdDrive -Path $null
$disk = Get-VMHardDiskDrive -VM $vm | Select-Object -First 1
$vm | Set-VMFirmware -FirstBootDevice $disk
[pscustomobject]@{ Name = $vm.Name; FirstBootDevice = $disk.Path } | ConvertTo-Json -Compress
