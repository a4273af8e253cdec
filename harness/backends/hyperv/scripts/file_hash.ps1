<#
.SYNOPSIS
  SHA-256 and size of a file on the host (install ISOs are verified before use).
.EXAMPLE
  .\file_hash.ps1 -Path 'D:\iso\debian-12.8.0-amd64-netinst.iso'
#>
param(
    [Parameter(Mandatory)][string]$Path
)
$ErrorActionPreference = 'Stop'

if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
    throw "no such file on this host: $Path"
}
$item = Get-Item -LiteralPath $Path
$hash = Get-FileHash -LiteralPath $Path -Algorithm SHA256
[pscustomobject]@{
    Path   = $item.FullName
    Length = $item.Length
    Sha256 = $hash.Hash.ToLowerInvariant()
} | ConvertTo-Json -Compress
