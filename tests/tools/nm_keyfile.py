#!/usr/bin/python3
"""Loads NetworkManager keyfiles with NetworkManager's own reader and prints what it read.

libnm's NM.keyfile_read (libnm >= 1.30, Debian's gir1.2-nm-1.0) parses a keyfile the way the
daemon's keyfile plugin does, without a running daemon. Each file named on the command line
is read, normalised and verified; every warning the reader reports (an unknown key, a value
it could not parse) makes this fail. Prints one JSON object per file, in order, as a list.
"""
import json
import sys

import gi

gi.require_version("NM", "1.0")
from gi.repository import GLib, NM  # noqa: E402


def addresses(setting):
    out = []
    for i in range(setting.get_num_addresses()):
        a = setting.get_address(i)
        out.append(f"{a.get_address()}/{a.get_prefix()}")
    return out


def ip(setting):
    if setting is None:
        return None
    return {
        "method": setting.get_method(),
        "addresses": addresses(setting),
        "gateway": setting.get_gateway(),
        "dns": [setting.get_dns(i) for i in range(setting.get_num_dns())],
        "search": [setting.get_dns_search(i) for i in range(setting.get_num_dns_searches())],
        "ignore_auto_dns": setting.get_ignore_auto_dns(),
        "routes": [
            f"{r.get_dest()}/{r.get_prefix()} via {r.get_next_hop()} metric {r.get_metric()}"
            for r in (setting.get_route(i) for i in range(setting.get_num_routes()))
        ],
    }


def read(path):
    warnings = []

    def handler(keyfile, connection, handler_type, handler_data, user_data):
        if handler_type == NM.KeyfileHandlerType.WARN:
            message = handler_data.warn_get()[0]
            warnings.append(message)
        return False

    data = open(path, "rb").read()
    keyfile = GLib.KeyFile()
    keyfile.load_from_bytes(GLib.Bytes.new(data), GLib.KeyFileFlags.NONE)
    connection = NM.keyfile_read(
        keyfile, "/etc/NetworkManager/system-connections", NM.KeyfileHandlerFlags.NONE, handler, None
    )
    if warnings:
        sys.exit(f"{path}: libnm warned: {warnings}")
    connection.normalize()
    connection.verify()
    s = connection.get_setting_connection()
    out = {
        "id": s.get_id(),
        "uuid": s.get_uuid(),
        "type": s.get_connection_type(),
        "interface": s.get_interface_name(),
        "ipv4": ip(connection.get_setting_ip4_config()),
        "ipv6": ip(connection.get_setting_ip6_config()),
    }
    wifi = connection.get_setting_wireless()
    if wifi is not None:
        out["ssid"] = list(wifi.get_ssid().get_data())
        out["hidden"] = wifi.get_hidden()
        out["psk"] = connection.get_setting_wireless_security().get_psk()
    return out


print(json.dumps([read(p) for p in sys.argv[1:]]))
