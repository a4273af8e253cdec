<#
.SYNOPSIS
  Create the run's folder on the host (every disk, ISO and export of one run lives in
  it) with a marker file naming the run, so the janitor can find it if the run dies.
  The path comes back in full ([IO.Path]::GetFullPath: 'D:/VMs' as 'D:\VMs'), the form
  every later script and the harness compare.
.EXAMPLE
  .\new_run_folder.ps1 -Root 'D:\Hyper-V\Virtual Hard Disks' -Name 'gmi-harness-20261126-0700-gw0' -Marker '{"run":"..."}'
#>
param(
    [Parameter(Mandatory)][string]$Root,
    [Parameter(Mandatory)][string]$Name,
    [Parameter(Mandatory)][string]$Marker
)
$ErrorActionPreference = 'Stop'

$path = [IO.Path]::GetFullPath((Join-Path $Root $Name))
New-Item -ItemType Directory -Path $path -Force | Out-Null
Set-Content -LiteralPath (Join-Path $path 'gmi-run.json') -Value $Marker -Encoding UTF8
[pscustomobject]@{ Path = $path } | ConvertTo-Json -Compress
