<#
.SYNOPSIS
  Step 7 on the host: Export-VM into a staging folder, then flatten the export into
  the tree vmgenie imports, at Destination:
    Virtual Machines\<id>.vmcx (exactly one), .vmgs, .VMRS
    Virtual Hard Disks\<VM name>.vhdx
    Snapshots\ (present, empty)
  Reports every file (path relative to Destination, size) and the VHDX's SHA-256.
  The exported configuration carries no Notes (the harness's run tag is restored on the
  build VM afterwards) and its network adapter is not connected to a switch (the build
  host's switch name would make Import-VM fail on a host without that switch; it is
  reconnected on the build VM afterwards).
  Destination may be on another volume or a share: the flattened folders are then
  copied (Move-Item cannot move a folder across volumes in Windows PowerShell 5.1).
  An existing Destination is replaced only with -Replace $true.
.EXAMPLE
  .\export_vm.ps1 -Name 'GMI Debian 12' -Staging 'D:\VHD\gmi-harness-run1\export' -Destination 'D:\VHD\gmi-harness-run1\gmi'
#>
param(
    [Parameter(Mandatory)][string]$Name,
    [Parameter(Mandatory)][string]$Staging,
    [Parameter(Mandatory)][string]$Destination,
    [bool]$Replace = $false
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
if (-not $vm) { throw "no VM named '$Name' on this host" }
if ($vm.State -ne 'Off') { throw "VM '$Name' is $($vm.State); export it Off" }
if (@(Get-VMSnapshot -VM $vm).Count -gt 0) { throw "VM '$Name' has checkpoints; merge them first" }
if ((Test-Path -LiteralPath $Destination) -and -not $Replace) {
    throw "$Destination already exists; remove it (or pass --force to replace it)"
}
New-Item -ItemType Directory -Path $Staging -Force | Out-Null
$exported = Join-Path $Staging $Name
# A leftover of an earlier attempt would make Export-VM fail.
if (Test-Path -LiteralPath $exported) { Remove-Item -LiteralPath $exported -Recurse -Force }
# The harness's run tag stays out of the image: a VM imported from the GMI must not
# look like a leftover of a harness run (the janitor removes those). So does this host's
# switch. An adopted VM may have no Notes at all ($null).
$notes = [string]$vm.Notes
$connected = @(Get-VMNetworkAdapter -VM $vm | Where-Object { $_.SwitchName } | ForEach-Object {
    [pscustomobject]@{ Adapter = $_; SwitchName = $_.SwitchName }
})
try {
    $vm | Set-VM -Notes ''
    foreach ($c in $connected) { Disconnect-VMNetworkAdapter -VMNetworkAdapter $c.Adapter }
    Export-VM -VM $vm -Path $Staging
} finally {
    # the tag first: without it clean-up and the janitor cannot find the VM
    $vm | Set-VM -Notes $notes
    foreach ($c in $connected) { Connect-VMNetworkAdapter -VMNetworkAdapter $c.Adapter -SwitchName $c.SwitchName }
}
$vmcx = @(Get-ChildItem -LiteralPath (Join-Path $exported 'Virtual Machines') -Filter '*.vmcx' -Recurse)
if ($vmcx.Count -ne 1) { throw "Export-VM wrote $($vmcx.Count) .vmcx files; vmgenie imports exactly one" }
$disks = @(Get-ChildItem -LiteralPath (Join-Path $exported 'Virtual Hard Disks') -File)
if ($disks.Count -ne 1 -or $disks[0].Extension -ne '.vhdx') {
    throw "Export-VM wrote disks $($disks.Name -join ', '); a GMI has exactly one .vhdx"
}
if ($disks[0].Name -ne "$Name.vhdx") {
    throw "the exported disk is '$($disks[0].Name)', vmgenie needs '$Name.vhdx': rename the VM's disk and export again"
}
if (Test-Path -LiteralPath $Destination) {
    if (-not $Replace) { throw "$Destination already exists; remove it (or pass --force to replace it)" }
    Remove-Item -LiteralPath $Destination -Recurse -Force
}
# Move-Item moves a folder only within one volume (5.1: "Source and destination path
# must have identical roots"); to another volume or a share the folders are copied.
$sameRoot = [IO.Path]::GetPathRoot([IO.Path]::GetFullPath($exported)) -eq [IO.Path]::GetPathRoot([IO.Path]::GetFullPath($Destination))
New-Item -ItemType Directory -Path $Destination -Force | Out-Null
try {
    foreach ($sub in 'Virtual Machines', 'Virtual Hard Disks') {
        $from = Join-Path $exported $sub
        $to = Join-Path $Destination $sub
        if ($sameRoot) {
            Move-Item -LiteralPath $from -Destination $to
        } else {
            Copy-Item -LiteralPath $from -Destination $to -Recurse
        }
    }
    New-Item -ItemType Directory -Path (Join-Path $Destination 'Snapshots') -Force | Out-Null
} catch {
    # half a tree at Destination would block the next run (it is not replaced without --force)
    Remove-Item -LiteralPath $Destination -Recurse -Force -ErrorAction SilentlyContinue
    throw
} finally {
    Remove-Item -LiteralPath $exported -Recurse -Force -ErrorAction SilentlyContinue
}
$root = (Get-Item -LiteralPath $Destination).FullName.TrimEnd('\') + '\'
$files = @(Get-ChildItem -LiteralPath $Destination -Recurse -File | ForEach-Object {
    [pscustomobject]@{ Path = $_.FullName.Substring($root.Length); Length = $_.Length }
})
$vhdx = Join-Path $Destination "Virtual Hard Disks\$Name.vhdx"
[pscustomobject]@{
    Root               = $Destination
    Files              = $files
    Vhdx               = $vhdx
    VhdxSha256         = (Get-FileHash -LiteralPath $vhdx -Algorithm SHA256).Hash.ToLowerInvariant()
    Flattened          = if ($sameRoot) { 'moved' } else { 'copied' }
    DisconnectedSwitch = @($connected | ForEach-Object { $_.SwitchName })
} | ConvertTo-Json -Depth 4 -Compress
