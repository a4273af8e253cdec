<#
.SYNOPSIS
  SHA-256 and size of a file on the host (install ISOs and uploads are verified before
  use). Get-Item's own error passes through: an access denied (a share reached without
  delegation) is reported as that, not as a missing file.
.EXAMPLE
  .\file_hash.ps1 -Path 'D:\iso\debian-12.8.0-amd64-netinst.iso'
#>
param(
    [Parameter(Mandatory)][string]$Path
)
$ErrorActionPreference = 'Stop'

$item = Get-Item -LiteralPath $Path
if ($item -isnot [IO.FileInfo]) { throw "$Path on this host is a folder, not a file" }
$hash = Get-FileHash -LiteralPath $Path -Algorithm SHA256
[pscustomobject]@{
    Path   = $item.FullName
    Length = $item.Length
    Sha256 = $hash.Hash.ToLowerInvariant()
} | ConvertTo-Json -Compress
