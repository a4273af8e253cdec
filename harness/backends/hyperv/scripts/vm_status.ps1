<#
.SYNOPSIS
  A VM's state, heartbeat, network adapters (MAC, addresses reported over KVP) and the
  host's neighbour-table entries for those MACs (the address before KVP runs).
.EXAMPLE
  .\vm_status.ps1 -Name 'GMI Debian 12'
#>
param(
    [Parameter(Mandatory)][string]$Name
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
if (-not $vm) { throw "no VM named '$Name' on this host" }
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
    State      = $vm.State.ToString()
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
