<#
.SYNOPSIS
  One chunk of an upload, the mirror of read_chunk.ps1: base64 Data written at Offset
  into '<Path>.part' (beyond Offset the part is cut first: a chunk the session broke
  during is written again from where it stands), inside the run's folder, never the
  account's TEMP. Without Data it only reports how much of the part is there (where a
  broken upload resumes). finish_upload.ps1 checks the SHA-256 and renames the part.
.EXAMPLE
  .\write_chunk.ps1 -Path 'D:\VHD\gmi-harness-run1\debian-12.iso' -Offset 0 -Data 'AAEC...'
.EXAMPLE
  .\write_chunk.ps1 -Path 'D:\VHD\gmi-harness-run1\debian-12.iso'
#>
param(
    [Parameter(Mandatory)][string]$Path,
    [long]$Offset = 0,
    [string]$Data = ''
)
$ErrorActionPreference = 'Stop'

$part = "$Path.part"
if (-not $Data) {
    $length = if (Test-Path -LiteralPath $part -PathType Leaf) { (Get-Item -LiteralPath $part).Length } else { 0 }
    [pscustomobject]@{ Part = $part; Length = $length } | ConvertTo-Json -Compress
    return
}
$bytes = [Convert]::FromBase64String($Data)
$fs = [IO.File]::Open($part, 'OpenOrCreate', 'Write', 'None')
try {
    if ($Offset -gt $fs.Length) { throw "$part holds $($fs.Length) bytes; a chunk at offset $Offset would leave a gap" }
    $fs.SetLength($Offset)
    $null = $fs.Seek($Offset, 'Begin')
    $fs.Write($bytes, 0, $bytes.Length)
    $length = $fs.Length
} finally {
    $fs.Dispose()
}
[pscustomobject]@{ Part = $part; Length = $length } | ConvertTo-Json -Compress
