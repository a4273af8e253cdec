<#
.SYNOPSIS
  The VM's integration services as the host sees them (Get-VMIntegrationService), each
  with its English name (Key) found by the GUID in its Id: the names are localized.
.EXAMPLE
  .\integration_services.ps1 -Id '5f0e6a0c-3b7e-4c55-9a57-1c2d3e4f5a6b'
#>
param(
    [Parameter(Mandatory)][string]$Id
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Id $Id
# Names are localized; the GUID at the end of the Id is not. Key is the English name.
$ids = @{
    '84EAAE65-2F2E-45F5-9BB5-0E857DC8EB47' = 'Heartbeat'
    '2A34B1C2-FD73-4043-8A5B-DD2159BC743F' = 'Key-Value Pair Exchange'
    '5CED1297-4598-4915-A5FC-AD21BB4D02A4' = 'VSS'
    '9F8233AC-BE49-4C79-8EE3-E7E1985B2077' = 'Shutdown'
    '2497F4DE-E9FA-4204-80E4-4B75C46419C0' = 'Time Synchronization'
    '6C09BB55-D683-4DA0-8931-C9BF705F6480' = 'Guest Service Interface'
}
$services = @(Get-VMIntegrationService -VM $vm | ForEach-Object {
    $key = $ids[([string]$_.Id -split '\\')[-1].ToUpperInvariant()]
    [pscustomobject]@{
        Key                        = if ($key) { $key } else { $_.Name }
        Name                       = $_.Name
        Id                         = [string]$_.Id
        Enabled                    = $_.Enabled
        PrimaryOperationalStatus   = [string]$_.PrimaryOperationalStatus
        PrimaryStatusDescription   = [string]$_.PrimaryStatusDescription
        SecondaryStatusDescription = [string]$_.SecondaryStatusDescription
    }
})
# -InputObject keeps a one-element list a list (piping would unwrap it).
ConvertTo-Json -InputObject $services -Depth 3 -Compress
