<#
.SYNOPSIS
  Shut a VM down cleanly (the guest's shutdown integration service), waiting at most
  TimeoutSeconds; then turn it off hard and say so.
.EXAMPLE
  .\stop_vm.ps1 -Name 'GMI Debian 12' -TimeoutSeconds 120
#>
param(
    [Parameter(Mandatory)][string]$Name,
    [int]$TimeoutSeconds = 120,
    [bool]$WaitOnly = $false
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
if (-not $vm) { throw "no VM named '$Name' on this host" }
if ($vm.State -eq 'Off') {
    [pscustomobject]@{ Name = $Name; Result = 'already-off' } | ConvertTo-Json -Compress
    return
}
if (-not $WaitOnly) {
    $job = Stop-VM -VM $vm -Force -AsJob
}
$deadline = (Get-Date).AddSeconds($TimeoutSeconds)
while ((Get-VM -Name $Name).State -ne 'Off' -and (Get-Date) -lt $deadline) {
    Start-Sleep -Seconds 2
}
if ((Get-VM -Name $Name).State -eq 'Off') {
    $result = 'stopped'
    if ($job) { Remove-Job -Job $job -Force }
} elseif ($WaitOnly) {
    $result = 'running'
} else {
    if ($job) { $job | Stop-Job -PassThru | Remove-Job -Force }
    Stop-VM -VM $vm -TurnOff -Force
    $result = 'turned-off'
}
[pscustomobject]@{ Name = $Name; Result = $result } | ConvertTo-Json -Compress
