<#
.SYNOPSIS
  One chunk of a file on the host, base64-encoded: how the harness fetches the sealed
  VHDX over PowerShell Remoting (pypsrp's Client.fetch reads the whole file into one
  string and fails beyond about 800 MB). The caller loops with a growing Offset until
  N is 0, then checks the assembled file against the host's SHA-256.
.EXAMPLE
  .\read_chunk.ps1 -Path 'D:\VHD\gmi-harness-run1\gmi\Virtual Hard Disks\GMI Debian 12.vhdx' -Offset 0 -Count 8388608
#>
param(
    [Parameter(Mandatory)][string]$Path,
    [long]$Offset = 0,
    [int]$Count = 8MB
)
$ErrorActionPreference = 'Stop'

$fs = [IO.File]::Open($Path, 'Open', 'Read', 'Read')
try {
    $null = $fs.Seek($Offset, 'Begin')
    $buf = New-Object byte[] $Count
    $n = 0
    # Read may return less than asked before the end of the file: fill the chunk.
    while ($n -lt $Count) {
        $got = $fs.Read($buf, $n, $Count - $n)
        if ($got -le 0) { break }
        $n += $got
    }
    [pscustomobject]@{ N = $n; Data = [Convert]::ToBase64String($buf, 0, $n) } | ConvertTo-Json -Compress
} finally {
    $fs.Dispose()
}
