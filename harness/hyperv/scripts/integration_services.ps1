<#
.SYNOPSIS
  The VM's integration services as the host sees them (Get-VMIntegrationService).
.EXAMPLE
  .\integration_services.ps1 -Name 'gmi-check-debian-12'
#>
param(
    [Parameter(Mandatory)][string]$Name
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
if (-not $vm) { throw "no VM named '$Name' on this host" }
$services = @(Get-VMIntegrationService -VM $vm | ForEach-Object {
    [pscustomobject]@{
        Name                       = $_.Name
        Id                         = [string]$_.Id
        Enabled                    = $_.Enabled
        PrimaryStatusDescription   = [string]$_.PrimaryStatusDescription
        SecondaryStatusDescription = [string]$_.SecondaryStatusDescription
    }
})
# -InputObject keeps a one-element list a list (piping would unwrap it).
ConvertTo-Json -InputObject $services -Depth 3 -Compress
