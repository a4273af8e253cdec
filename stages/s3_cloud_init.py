"""Step 3: Install & prepare cloud-init, restricted to the NoCloud seed (or nothing)."""

from __future__ import annotations

import shlex

from harness.build import Build
from harness.errors import GmiError


def datasource_config(datasources: tuple[str, ...], extra: str = "") -> str:
    return ("# Written by gmi-harness: GMIs take their configuration from a NoCloud seed\n"
            "# ISO (volume label cidata), or none at all.\n"
            f"datasource_list: [ {', '.join(datasources)} ]\n" + extra)


def cloud_init(b: Build) -> None:
    """Install cloud-init (and what its locale/keyboard modules need), drop the
    installer's leftovers that disable it, restrict it to NoCloud and reset it."""
    pm, spec = b.distro.package_manager(), b.distro.cloud_init
    was = b.run(pm.version_of("cloud-init"), check=False,
                what="is cloud-init installed?")
    b.record["cloud_init_preinstalled"] = was.rc == 0
    b.sh(pm.install(spec.packages), what="install cloud-init")
    b.sh("command -v cloud-init", what="which cloud-init")
    b.sh("rm -fv " + " ".join(shlex.quote(f) for f in spec.remove_files),
         what="remove installer leftovers that disable cloud-init")
    b.put(spec.datasource_file, datasource_config(spec.datasource_list, spec.extra_config))
    # Ours must be the last file cloud-init reads, so that it wins.
    name = spec.datasource_file.rsplit("/", 1)[-1]
    folder = spec.datasource_file.rsplit("/", 1)[0]
    b.sh(f"test \"$(ls {shlex.quote(folder)}/*.cfg | LC_ALL=C sort | tail -n1)\" = "
         f"{shlex.quote(folder + '/' + name)}", what="our datasource file sorts last")
    for loc in spec.locales if spec.locale_gen_file else ():
        # Uncomment (or add) the locale, then generate: Debian's locale-gen ignores
        # arguments, so cloud-init cannot generate it at first boot.
        b.sh(f"f={shlex.quote(spec.locale_gen_file)}; l={shlex.quote(loc)}; "
             "charset=${l#*.}; "
             "if grep -q \"^# *$l \" \"$f\"; then sed -i \"s/^# *\\($l \\)/\\1/\" \"$f\"; "
             "elif ! grep -q \"^$l \" \"$f\"; then echo \"$l $charset\" >> \"$f\"; fi",
             what=f"enable locale {loc}")
    if spec.locale_gen_command:
        b.sh(spec.locale_gen_command, what="generate locales")
    b.record["locales"] = ", ".join(spec.locales)
    for command in spec.first_run:
        # The openSUSE note: run cloud-init's stages once by hand.
        b.sh(command, what=f"first run: {command}")
    units = " ".join(shlex.quote(u) for u in spec.units)
    # Unit names changed in cloud-init 24.3 (and some distros patch that back out):
    # a name the installed cloud-init does not have is the YAML's mistake, said plainly.
    # (list-unit-files reads the unit folders: it answers in a chroot too, where
    # `systemctl cat` cannot)
    missing = b.sh(f"for u in {units}; do systemctl list-unit-files --no-legend \"$u\" | "
                   "grep \"^$u \" >/dev/null || echo \"$u\"; done", what="cloud-init's units exist").split()
    if missing:
        have = b.sh("systemctl list-unit-files --no-legend 'cloud-*.service' | awk '{print $1}'",
                    what="cloud-init's units").split()
        raise GmiError(f"{b.distro.source.name}: cloud_init.units lists {', '.join(missing)}, which "
                       f"this cloud-init does not have (it has: {', '.join(have) or 'none'}); "
                       "fix the YAML")
    b.sh(f"systemctl enable {units}", what="enable cloud-init's units")
    b.sh("cloud-init clean --logs", what="reset cloud-init state")
    b.record.setdefault("versions", {})["cloud-init"] = b.sh(
        pm.version_of("cloud-init"), what="cloud-init version").strip()
