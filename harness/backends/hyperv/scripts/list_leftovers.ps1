<#
.SYNOPSIS
  For the janitor: every VM whose Notes start with 'gmi-harness ' (with its Id) and
  every run folder (gmi-harness-* with a gmi-run.json marker) under the given roots,
  with the partial uploads (*.part) left in it.
.EXAMPLE
  .\list_leftovers.ps1 -Roots @('D:\Hyper-V\Virtual Hard Disks')
#>
param(
    [string[]]$Roots = @()
)
$ErrorActionPreference = 'Stop'

if ($Roots.Count -eq 0) { $Roots = @((Get-VMHost).VirtualHardDiskPath) }
$vms = @(Get-VM | Where-Object { ([string]$_.Notes).StartsWith('gmi-harness ') } | ForEach-Object {
    [pscustomobject]@{ Name = $_.Name; Id = $_.Id.ToString(); State = $_.State.ToString(); Notes = $_.Notes }
})
$folders = @(foreach ($root in $Roots) {
    if (-not (Test-Path -LiteralPath $root)) { continue }
    Get-ChildItem -LiteralPath $root -Directory -Filter 'gmi-harness-*' | ForEach-Object {
        $marker = Join-Path $_.FullName 'gmi-run.json'
        [pscustomobject]@{
            Path    = $_.FullName
            # ReadAllText, not Get-Content: in Windows PowerShell 5.1 Get-Content's string
            # carries PSPath & co., and ConvertTo-Json writes it as an object.
            Marker  = if (Test-Path -LiteralPath $marker) { [IO.File]::ReadAllText($marker) } else { '' }
            Partial = @(Get-ChildItem -LiteralPath $_.FullName -Recurse -File -Filter '*.part' | ForEach-Object {
                [pscustomobject]@{ Path = $_.FullName; Length = $_.Length }
            })
        }
    }
})
[pscustomobject]@{ Vms = $vms; Folders = $folders } | ConvertTo-Json -Depth 4 -Compress
