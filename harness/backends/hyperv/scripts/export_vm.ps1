<#
.SYNOPSIS
  Step 7 on the host: Export-VM into a staging folder, then flatten the export into
  the tree vmgenie imports, at Destination:
    Virtual Machines\<id>.vmcx (exactly one), .vmgs, .VMRS
    Virtual Hard Disks\<ExportName>.vhdx
    Snapshots\ (present, empty)
  Reports every file (path relative to Destination, size) and the VHDX's SHA-256.
  The VM (found by its Id) is renamed to ExportName (vmgenie's 'GMI <Os> <Version>')
  only for Export-VM and gets its own name back at once: a host that runs vmgenie has
  its base VM under that name, and vmgenie's import removes a VM of that name.
  The exported configuration carries no Notes (the harness's run tag is restored on the
  build VM afterwards), no media in its DVD drives (an ISO path the importing host lacks
  makes Import-VM fail; put back after) and its network adapter is not connected to a
  switch (the build host's switch name would make Import-VM fail on a host without
  that switch; reconnected after).
  The flattened folders are moved; where Move-Item cannot (another volume, a volume
  mounted in a folder, a share: Windows PowerShell 5.1 moves a folder within one volume
  only) they are copied.
  An existing Destination is replaced only with -Replace $true.
.EXAMPLE
  .\export_vm.ps1 -Id '5f0e6a0c-3b7e-4c55-9a57-1c2d3e4f5a6b' -ExportName 'GMI Debian 12' -Staging 'D:\VHD\gmi-harness-run1\export' -Destination 'D:\VHD\gmi-harness-run1\gmi'
#>
param(
    [Parameter(Mandatory)][string]$Id,
    [Parameter(Mandatory)][string]$ExportName,
    [Parameter(Mandatory)][string]$Staging,
    [Parameter(Mandatory)][string]$Destination,
    [bool]$Replace = $false
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Id $Id
if ($vm.State -ne 'Off') { throw "VM '$($vm.Name)' is $($vm.State); export it Off" }
if (@(Get-VMSnapshot -VM $vm).Count -gt 0) { throw "VM '$($vm.Name)' has checkpoints; merge them first" }
if ((Test-Path -LiteralPath $Destination) -and -not $Replace) {
    throw "$Destination already exists; remove it (or pass --force to replace it)"
}
New-Item -ItemType Directory -Path $Staging -Force | Out-Null
$exported = Join-Path $Staging $ExportName
# A leftover of an earlier attempt would make Export-VM fail.
if (Test-Path -LiteralPath $exported) { Remove-Item -LiteralPath $exported -Recurse -Force }
# The harness's run tag stays out of the image: a VM imported from the GMI must not
# look like a leftover of a harness run (the janitor removes those). So do this host's
# switch and media. An adopted VM may have no Notes at all ($null).
$ownName = $vm.Name
$notes = [string]$vm.Notes
$connected = @(Get-VMNetworkAdapter -VM $vm | Where-Object { $_.SwitchName } | ForEach-Object {
    [pscustomobject]@{ Adapter = $_; SwitchName = $_.SwitchName }
})
$media = @(Get-VMDvdDrive -VM $vm | Where-Object { $_.Path } | ForEach-Object {
    [pscustomobject]@{ Drive = $_; Path = $_.Path }
})
try {
    $vm | Set-VM -Notes ''
    foreach ($c in $connected) { Disconnect-VMNetworkAdapter -VMNetworkAdapter $c.Adapter }
    foreach ($m in $media) { Set-VMDvdDrive -VMDvdDrive $m.Drive -Path $null }
    Rename-VM -VM $vm -NewName $ExportName
    Export-VM -VM $vm -Path $Staging
} finally {
    # its own name first (the shortest time under vmgenie's name), then the tag: without
    # it the janitor cannot find the VM
    Rename-VM -VM $vm -NewName $ownName
    $vm | Set-VM -Notes $notes
    foreach ($c in $connected) { Connect-VMNetworkAdapter -VMNetworkAdapter $c.Adapter -SwitchName $c.SwitchName }
    foreach ($m in $media) { Set-VMDvdDrive -VMDvdDrive $m.Drive -Path $m.Path }
}
$vmcx = @(Get-ChildItem -LiteralPath (Join-Path $exported 'Virtual Machines') -Filter '*.vmcx' -Recurse)
if ($vmcx.Count -ne 1) { throw "Export-VM wrote $($vmcx.Count) .vmcx files; vmgenie imports exactly one" }
$disks = @(Get-ChildItem -LiteralPath (Join-Path $exported 'Virtual Hard Disks') -File)
if ($disks.Count -ne 1 -or $disks[0].Extension -ne '.vhdx') {
    throw "Export-VM wrote disks $($disks.Name -join ', '); a GMI has exactly one .vhdx"
}
if ($disks[0].Name -ne "$ExportName.vhdx") {
    throw "the exported disk is '$($disks[0].Name)', vmgenie needs '$ExportName.vhdx': rename the VM's disk and export again"
}
if (Test-Path -LiteralPath $Destination) {
    if (-not $Replace) { throw "$Destination already exists; remove it (or pass --force to replace it)" }
    Remove-Item -LiteralPath $Destination -Recurse -Force
}
New-Item -ItemType Directory -Path $Destination -Force | Out-Null
$flattened = 'moved'
try {
    foreach ($sub in 'Virtual Machines', 'Virtual Hard Disks') {
        $from = Join-Path $exported $sub
        $to = Join-Path $Destination $sub
        try {
            Move-Item -LiteralPath $from -Destination $to
        } catch {
            # 5.1 moves a folder within one volume only ("identical roots"); a volume
            # mounted in a folder has the same drive letter and is another volume
            if (Test-Path -LiteralPath $to) { Remove-Item -LiteralPath $to -Recurse -Force }
            Copy-Item -LiteralPath $from -Destination $to -Recurse
            $flattened = 'copied'
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
$vhdx = Join-Path $Destination "Virtual Hard Disks\$ExportName.vhdx"
[pscustomobject]@{
    Root               = $Destination
    Files              = $files
    Vhdx               = $vhdx
    VhdxSha256         = (Get-FileHash -LiteralPath $vhdx -Algorithm SHA256).Hash.ToLowerInvariant()
    Flattened          = $flattened
    DisconnectedSwitch = @($connected | ForEach-Object { $_.SwitchName })
    EmptiedMedia       = @($media | ForEach-Object { $_.Path })
} | ConvertTo-Json -Depth 4 -Compress
