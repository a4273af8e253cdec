<#
.SYNOPSIS
  The export proven importable, as vmgenie imports it (Import-VM -Path <vmcx> -Copy):
  Compare-VM -Path <vmcx> -Copy -GenerateNewId with the VM and disk destinations in a
  scratch folder. Compare-VM registers nothing; it reports what would stop the import
  (its Incompatibilities: MessageId and Hyper-V's own Message). A configuration this
  host cannot even read is reported as one, with Hyper-V's error. The scratch folder is
  removed after.
.EXAMPLE
  .\import_check.ps1 -Vmcx 'D:\VHD\gmi-harness-run1\gmi\Virtual Machines\5F0E6A0C-3B7E-4C55-9A57-1C2D3E4F5A6B.vmcx' -Scratch 'D:\VHD\gmi-harness-run1\import-check'
#>
param(
    [Parameter(Mandatory)][string]$Vmcx,
    [Parameter(Mandatory)][string]$Scratch
)
$ErrorActionPreference = 'Stop'

New-Item -ItemType Directory -Path $Scratch -Force | Out-Null
try {
    $report = Compare-VM -Path $Vmcx -Copy -GenerateNewId -VirtualMachinePath $Scratch -VhdDestinationPath $Scratch
    $found = @($report.Incompatibilities | ForEach-Object {
        [pscustomobject]@{ MessageId = $_.MessageId; Message = [string]$_.Message }
    })
} catch {
    $found = @([pscustomobject]@{ MessageId = $null; Message = "$_" })
} finally {
    Remove-Item -LiteralPath $Scratch -Recurse -Force -ErrorAction SilentlyContinue
}
[pscustomobject]@{ Vmcx = $Vmcx; Incompatibilities = $found } | ConvertTo-Json -Depth 4 -Compress
