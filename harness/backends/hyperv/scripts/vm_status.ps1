<#
.SYNOPSIS
  A VM's state, status, heartbeat, network adapters (MAC, addresses reported over KVP)
  and the host's neighbour-table entries for those MACs (seen only for guests this host
  itself talked to; KVP is the real source).
.EXAMPLE
  .\vm_status.ps1 -Id '5f0e6a0c-3b7e-4c55-9a57-1c2d3e4f5a6b'
#>
param(
    [Parameter(Mandatory)][string]$Id
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Id $Id
$adapters = @(Get-VMNetworkAdapter -VM $vm)
$macs = @($adapters | ForEach-Object {
    ($_.MacAddress -replace '(..)(?!$)', '$1-').ToUpperInvariant()
})
$neighbours = @(Get-NetNeighbor -ErrorAction SilentlyContinue |
    Where-Object { $macs -contains ([string]$_.LinkLayerAddress).ToUpperInvariant() } |
    ForEach-Object {
        [pscustomobject]@{
            IPAddress        = $_.IPAddress
            LinkLayerAddress = ([string]$_.LinkLayerAddress).ToUpperInvariant()
            State            = $_.State.ToString()
        }
    })
$heartbeat = Get-VMIntegrationService -VM $vm | Where-Object { $_.Id -match '84EAAE65-2F2E-45F5-9BB5-0E857DC8EB47' }
[pscustomobject]@{
    Name       = $vm.Name
    Id         = $vm.Id.ToString()
    State      = $vm.State.ToString()
    Status     = [string]$vm.Status
    Heartbeat  = if ($heartbeat) { [string]$heartbeat.PrimaryStatusDescription } else { 'unknown' }
    Uptime     = [int]$vm.Uptime.TotalSeconds
    Notes      = $vm.Notes
    Adapters   = @($adapters | ForEach-Object {
        [pscustomobject]@{
            MacAddress  = ($_.MacAddress -replace '(..)(?!$)', '$1-').ToUpperInvariant()
            IPAddresses = @($_.IPAddresses)
        }
    })
    Neighbours = $neighbours
} | ConvertTo-Json -Depth 5 -Compress
