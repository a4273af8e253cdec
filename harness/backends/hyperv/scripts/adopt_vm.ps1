<#
.SYNOPSIS
  Adopt a VM a person installed by hand (the procedure's Step 1 as written): check it
  is Generation 2 and has one disk, turn automatic checkpoints off, report it.
.EXAMPLE
  .\adopt_vm.ps1 -Name 'GMI Debian 12'
#>
param(
    [Parameter(Mandatory)][string]$Name
)
$ErrorActionPreference = 'Stop'

$vm = Get-VM -Name $Name -ErrorAction SilentlyContinue
if (-not $vm) { throw "no VM named '$Name' on this host (Get-VM lists them)" }
if ($vm.Generation -ne 2) { throw "VM '$Name' is Generation $($vm.Generation); GMIs are Generation 2 only" }
$disks = @(Get-VMHardDiskDrive -VM $vm)
if ($disks.Count -ne 1) { throw "VM '$Name' has $($disks.Count) disks; a GMI has exactly one" }
$vm | Set-VM -AutomaticCheckpointsEnabled $false
[pscustomobject]@{
    Name       = $vm.Name
    Id         = $vm.Id.ToString()
    Generation = $vm.Generation
    State      = $vm.State.ToString()
    Vhdx       = $disks[0].Path
    Notes      = $vm.Notes
} | ConvertTo-Json -Compress
