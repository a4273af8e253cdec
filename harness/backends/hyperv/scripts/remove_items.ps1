<#
.SYNOPSIS
  Remove what a harness run created on the host: its VMs, found by Id (or, for a VM
  whose Id the harness never learnt, by its run-unique name), turned off first, and
  only those whose Notes carry the run's tag, so nobody else's VM is ever touched; then
  its files and folders. A VM still exporting or merging (a session that broke during
  Export-VM leaves it running on the host) is waited for, at most WaitSeconds. A disk
  its VM held a moment after stopping is removed on a later try (5 tries, 2 s apart).
.EXAMPLE
  .\remove_items.ps1 -VmIds @('5f0e6a0c-3b7e-4c55-9a57-1c2d3e4f5a6b') -Paths @('D:\VHD\gmi-harness-run1') -Tag 'gmi-harness run=20261126-0700 worker=main'
#>
param(
    [string[]]$VmIds = @(),
    [string[]]$VmNames = @(),
    [string[]]$Paths = @(),
    [Parameter(Mandatory)][string]$Tag,
    [int]$WaitSeconds = 600
)
$ErrorActionPreference = 'Stop'

function Remove-Retried([string]$Path) {
    for ($try = 1; ; $try++) {
        try { Remove-Item -LiteralPath $Path -Recurse -Force; return } catch { if ($try -ge 5) { throw }; Start-Sleep -Seconds 2 }
    }
}

$removed = @()
$skipped = @()
$vms = @()
foreach ($id in $VmIds) {
    # a VM that is gone already is fine; any other error (access denied) is not hidden
    if (@(Get-VM | Where-Object { $_.Id -eq $id }).Count -gt 0) { $vms += Get-VM -Id $id }
}
foreach ($name in $VmNames) { $vms += @(Get-VM | Where-Object { $_.Name -ceq $name }) }
foreach ($vm in $vms) {
    # The tag is whole tokens: "worker=gw1" must not match "worker=gw10".
    $notes = [string]$vm.Notes
    if (-not ($notes -ceq $Tag -or $notes.StartsWith("$Tag ", [StringComparison]::Ordinal))) {
        $skipped += $vm.Id.ToString()
        continue
    }
    $deadline = (Get-Date).AddSeconds($WaitSeconds)
    while (([string]$vm.Status -match 'Export|Merg') -and (Get-Date) -lt $deadline) {
        Start-Sleep -Seconds 2
        $vm = Get-VM -Id $vm.Id
    }
    if ($vm.State -ne 'Off') { Stop-VM -VM $vm -TurnOff -Force }
    $disks = @(Get-VMHardDiskDrive -VM $vm | ForEach-Object { $_.Path })
    Remove-VM -VM $vm -Force
    foreach ($d in $disks) { if (Test-Path -LiteralPath $d) { Remove-Retried $d } }
    $removed += $vm.Id.ToString()
}
foreach ($p in $Paths) {
    if (Test-Path -LiteralPath $p) {
        Remove-Retried $p
        $removed += $p
    }
}
[pscustomobject]@{ Removed = $removed; Skipped = $skipped } | ConvertTo-Json -Compress
