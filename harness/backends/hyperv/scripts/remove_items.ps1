<#
.SYNOPSIS
  Remove what a harness run created on the host: its VMs (turned off first; only VMs
  whose Notes carry the run's tag, so a person's VM of the same name is never touched)
  and its files and folders.
.EXAMPLE
  .\remove_items.ps1 -VmNames @('GMI Debian 12') -Paths @('D:\VHD\gmi-harness-run1') -Tag 'gmi-harness run=20261126-0700'
#>
param(
    [string[]]$VmNames = @(),
    [string[]]$Paths = @(),
    [Parameter(Mandatory)][string]$Tag
)
$ErrorActionPreference = 'Stop'

$removed = @()
$skipped = @()
foreach ($name in $VmNames) {
    # Several VMs may share a name (a dead run's and a live run's): each is judged alone.
    foreach ($vm in @(Get-VM -Name $name -ErrorAction SilentlyContinue)) {
        # The tag is whole tokens: "worker=gw1" must not match "worker=gw10".
        $notes = [string]$vm.Notes
        if (-not ($notes -ceq $Tag -or $notes.StartsWith("$Tag ", [StringComparison]::Ordinal))) {
            $skipped += $name
            continue
        }
        if ($vm.State -ne 'Off') { Stop-VM -VM $vm -TurnOff -Force }
        $disks = @(Get-VMHardDiskDrive -VM $vm | ForEach-Object { $_.Path })
        Remove-VM -VM $vm -Force
        foreach ($d in $disks) { if (Test-Path -LiteralPath $d) { Remove-Item -LiteralPath $d -Force } }
        $removed += $name
    }
}
foreach ($p in $Paths) {
    if (Test-Path -LiteralPath $p) {
        Remove-Item -LiteralPath $p -Recurse -Force
        $removed += $p
    }
}
[pscustomobject]@{ Removed = $removed; Skipped = $skipped } | ConvertTo-Json -Compress
