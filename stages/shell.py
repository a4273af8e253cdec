"""Shell snippets that several stages use (each returns a script; nothing runs here)."""

from __future__ import annotations

import shlex

NEWEST_KERNEL = "ls /boot/vmlinuz-* | sed 's|/boot/vmlinuz-||' | sort -V | tail -n1"


def running_kernel(live: bool) -> str:
    """The kernel the system runs: ``uname -r``; in a chroot (where uname is the
    host's) the newest installed one, which the first boot starts."""
    return "uname -r" if live else NEWEST_KERNEL


def set_initramfs_updates(conf: str, value: str) -> str:
    return (f"sed -i 's/^update_initramfs=.*/update_initramfs={value}/' {shlex.quote(conf)}\n"
            f"grep -qx 'update_initramfs={value}' {shlex.quote(conf)}")


def grub_settings_script(path: str, settings: dict[str, str], cmdline: tuple[str, ...]) -> str:
    """Set ``KEY=value`` lines in /etc/default/grub (replace or append), and add the
    kernel parameters to GRUB_CMDLINE_LINUX."""
    lines = [f"f={shlex.quote(path)}"]
    for key, value in settings.items():
        lines.append(f"if grep -q '^#\\?{key}=' \"$f\"; then "
                     f"sed -i 's|^#\\?{key}=.*|{key}={value}|' \"$f\"; "
                     f"else echo '{key}={value}' >> \"$f\"; fi")
    for param in cmdline:
        sed = f"s|^GRUB_CMDLINE_LINUX=\"\\(.*\\)\"|GRUB_CMDLINE_LINUX=\"\\1 {param}\"|"
        lines.append(f"grep -q '^GRUB_CMDLINE_LINUX=.*{param}' \"$f\" || sed -i '{sed}' \"$f\"")
    return "\n".join(lines)


def dq(text: str) -> str:
    """``text`` for a double-quoted shell word ($m still expands)."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
