// Test helpers over `@tauri-apps/api/mocks`: a per-command handler table, a log of calls,
// and pushing messages into a Channel the frontend passed to a command.

import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import type { DeviceInfo, SettingsView } from "./api";

type Handler = (args: Record<string, unknown>) => unknown;

export interface Ipc {
  calls: { cmd: string; args: Record<string, unknown> }[];
  /** Sends `message` on the channel passed as `args[name]` of the last call of `cmd`. */
  push: (cmd: string, name: string, message: unknown) => void;
}

export function installIpc(handlers: Record<string, Handler>): Ipc {
  const calls: Ipc["calls"] = [];
  const counters = new Map<number, number>();
  mockIPC((cmd, args) => {
    const a = (args ?? {}) as Record<string, unknown>;
    calls.push({ cmd, args: a });
    const handler = handlers[cmd];
    if (!handler) throw new Error(`unexpected command ${cmd}`);
    return handler(a);
  });
  const push = (cmd: string, name: string, message: unknown) => {
    const call = [...calls].reverse().find((c) => c.cmd === cmd);
    if (!call) throw new Error(`${cmd} was not called`);
    const id = (call.args[name] as { id: number }).id;
    const index = counters.get(id) ?? 0;
    counters.set(id, index + 1);
    // In @tauri-apps/api 2.12 a channel message carries `index` (its position in the stream).
    (
      window as unknown as {
        __TAURI_INTERNALS__: { runCallback: (id: number, data: unknown) => void };
      }
    ).__TAURI_INTERNALS__.runCallback(id, { message, index });
  };
  return { calls, push };
}

export function resetIpc() {
  clearMocks();
}

export function device(serial: string, patch: Partial<DeviceInfo> = {}): DeviceInfo {
  return {
    family: "yubikey",
    model: "YubiKey 5 NFC",
    serial,
    firmware: "5.4.3",
    free_slots: ["hotp:1", "hotp:2"],
    emulated: true,
    ...patch,
  };
}

export const settingsView = (demo = false): SettingsView => ({
  settings: { db_path: null, server_url: null, server_ca_pem: null, demo },
  effective_db_path: "/tmp/station.db",
  db_from_env: true,
  emulator_dir: "/tmp/emulators",
  exports_dir: "/tmp/exports",
  tls_trust_in_force: null,
  passphrase_set: false,
});
