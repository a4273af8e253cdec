<#
.SYNOPSIS
  The end of an upload: the SHA-256 of '<Path>.part' compared with the sender's; equal,
  the part becomes Path; different, the part is removed and the upload fails (the
  sender starts it again). Run again after it finished, it checks Path itself.
.EXAMPLE
  .\finish_upload.ps1 -Path 'D:\VHD\gmi-harness-run1\debian-12.iso' -Sha256 '5f0e...'
#>
param(
    [Parameter(Mandatory)][string]$Path,
    [Parameter(Mandatory)][string]$Sha256
)
$ErrorActionPreference = 'Stop'

$part = "$Path.part"
if (-not (Test-Path -LiteralPath $part) -and (Test-Path -LiteralPath $Path)) {
    # finished already (the session broke after the rename): the file is checked again
    $part = $Path
}
$hash = (Get-FileHash -LiteralPath $part -Algorithm SHA256).Hash.ToLowerInvariant()
if ($hash -ne $Sha256.ToLowerInvariant()) {
    Remove-Item -LiteralPath $part -Force
    throw "the upload to $Path has SHA-256 $hash, the sender's file $($Sha256.ToLowerInvariant()): removed"
}
if ($part -ne $Path) {
    if (Test-Path -LiteralPath $Path) { Remove-Item -LiteralPath $Path -Force }
    Move-Item -LiteralPath $part -Destination $Path
}
$item = Get-Item -LiteralPath $Path
[pscustomobject]@{ Path = $item.FullName; Length = $item.Length; Sha256 = $hash } | ConvertTo-Json -Compress
