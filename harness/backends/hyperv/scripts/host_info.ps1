<#
.SYNOPSIS
  What the harness needs to know about a Hyper-V host before it builds anything.
.EXAMPLE
  .\host_info.ps1 -SwitchName 'External'
#>
param(
    [string]$SwitchName = ''
)
$ErrorActionPreference = 'Stop'

if (-not (Get-Module -ListAvailable -Name Hyper-V)) {
    throw 'the Hyper-V PowerShell module is not installed on this host (Install-WindowsFeature Hyper-V-PowerShell)'
}
$vmHost = Get-VMHost
$switches = @(Get-VMSwitch | ForEach-Object { $_.Name })
if ($SwitchName -and -not ($switches -contains $SwitchName)) {
    throw "no virtual switch named '$SwitchName' on $($vmHost.ComputerName); switches: $($switches -join ', ')"
}
[pscustomobject]@{
    ComputerName        = $vmHost.ComputerName
    VirtualHardDiskPath = $vmHost.VirtualHardDiskPath
    Switches            = $switches
    PowerShellVersion   = $PSVersionTable.PSVersion.ToString()
} | ConvertTo-Json -Depth 4 -Compress
