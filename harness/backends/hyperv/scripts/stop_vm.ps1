<#
.SYNOPSIS
  Shut a VM down cleanly (the guest's shutdown integration service), waiting at most
  TimeoutSeconds; then turn it off hard and say so. With -WaitOnly, only wait for the
  guest to power itself off.
.EXAMPLE
  .\stop_vm.ps1 -Id '5f0e6a0c-3b7e-4c55-9a57-1c2d3e4f5a6b' -TimeoutSeconds 120
#>
param(
    [Parameter(Mandatory)][string]$Id,
    [int]$TimeoutSeconds = 120,
    [bool]$WaitOnly = $false
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Id $Id
if ($vm.State -eq 'Off') {
    [pscustomobject]@{ Name = $vm.Name; Result = 'already-off' } | ConvertTo-Json -Compress
    return
}
if (-not $WaitOnly) {
    $job = Stop-VM -VM $vm -Force -AsJob
}
$deadline = (Get-Date).AddSeconds($TimeoutSeconds)
while ((Get-VM -Id $Id).State -ne 'Off' -and (Get-Date) -lt $deadline) {
    Start-Sleep -Seconds 2
}
if ((Get-VM -Id $Id).State -eq 'Off') {
    $result = 'stopped'
    if ($job) { Remove-Job -Job $job -Force }
} elseif ($WaitOnly) {
    $result = 'running'
} else {
    if ($job) { $job | Stop-Job -PassThru | Remove-Job -Force }
    Stop-VM -VM $vm -TurnOff -Force
    $result = 'turned-off'
}
[pscustomobject]@{ Name = $vm.Name; Result = $result } | ConvertTo-Json -Compress
