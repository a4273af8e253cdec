<#
.SYNOPSIS
  What the harness needs to know about a Hyper-V host before it builds anything, and a
  preflight that fails early, in one line:
  - the Hyper-V module, with every parameter the scripts pass (Required: cmdlet ->
    parameter names; Windows Server 2016 / Windows 10 1607 or newer has them all);
  - the switch;
  - the configuration versions this host supports (Get-VMHostSupportedVersion) and its
    default;
  - the account may create, rename and delete under the VHD folder (Root; default: the
    host's VirtualHardDiskPath), a disk the Hyper-V service writes (New-VHD) included:
    Export-VM's files are that service's too, and the account moves and removes them.
.EXAMPLE
  .\host_info.ps1 -SwitchName 'External' -Root 'D:\Hyper-V\Virtual Hard Disks' -Required @{ 'Compare-VM' = @('Path', 'Copy', 'GenerateNewId') }
#>
param(
    [string]$SwitchName = '',
    [string]$Root = '',
    [hashtable]$Required = @{}
)
$ErrorActionPreference = 'Stop'

if (-not (Get-Module -ListAvailable -Name Hyper-V)) {
    throw 'the Hyper-V PowerShell module is not installed on this host (Install-WindowsFeature Hyper-V-PowerShell)'
}
$missing = @(foreach ($name in $Required.Keys) {
    $command = Get-Command -Name $name -ErrorAction SilentlyContinue
    if (-not $command) { $name; continue }
    foreach ($p in $Required[$name]) { if (-not $command.Parameters.ContainsKey($p)) { "$name -$p" } }
})
$os = [Environment]::OSVersion.Version
if ($missing.Count -gt 0) {
    throw "this host's Hyper-V module (Windows $os) lacks what the scripts use: $($missing -join ', '); the harness needs Windows Server 2016 / Windows 10 1607 or newer"
}
$vmHost = Get-VMHost
$switches = @(Get-VMSwitch | ForEach-Object { $_.Name })
if ($SwitchName -and -not ($switches -contains $SwitchName)) {
    throw "no virtual switch named '$SwitchName' on $($vmHost.ComputerName); switches: $($switches -join ', ')"
}
$versions = @(Get-VMHostSupportedVersion | ForEach-Object { $_.Version.ToString() })
$default = (Get-VMHostSupportedVersion -Default).Version.ToString()
if (-not $Root) { $Root = $vmHost.VirtualHardDiskPath }
if (-not (Test-Path -LiteralPath $Root -PathType Container)) {
    throw "the VHD folder $Root does not exist on $($vmHost.ComputerName) (--hyperv-vhd-path, else the host's VirtualHardDiskPath)"
}
$account = [Security.Principal.WindowsIdentity]::GetCurrent().Name
$probe = Join-Path $Root "gmi-preflight-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
$renamed = "$probe-renamed"
try {
    New-Item -ItemType Directory -Path $probe | Out-Null
    New-VHD -Path (Join-Path $probe 'probe.vhdx') -SizeBytes 3MB -Dynamic | Out-Null
    Rename-Item -LiteralPath $probe -NewName (Split-Path -Leaf $renamed)
    Remove-Item -LiteralPath $renamed -Recurse -Force
} catch {
    $why = "$_"
    foreach ($left in $probe, $renamed) {
        if (Test-Path -LiteralPath $left) { Remove-Item -LiteralPath $left -Recurse -Force -ErrorAction SilentlyContinue }
    }
    throw "$account cannot create, rename and delete under $Root, a disk Hyper-V wrote included ($why): grant it Modify there, inherited: icacls `"$Root`" /grant `"$($account):(OI)(CI)M`""
}
[pscustomobject]@{
    ComputerName        = $vmHost.ComputerName
    VirtualHardDiskPath = $vmHost.VirtualHardDiskPath
    Switches            = $switches
    PowerShellVersion   = $PSVersionTable.PSVersion.ToString()
    OsVersion           = $os.ToString()
    OsBuild             = $os.Build
    SupportedVersions   = $versions
    DefaultVersion      = $default
    Account             = $account
} | ConvertTo-Json -Depth 4 -Compress
