// Devices: the attached tokens, live (the app subscribes to hotplug events), and the demo
// switch that attaches emulated tokens on a machine without hardware.

import { useState } from "preact/hooks";
import type { DeviceInfo } from "../api";

export function deviceState(d: DeviceInfo, busy: Set<string>): string {
  if (busy.has(d.serial)) return "provisioning";
  return d.free_slots.length > 0 ? `ready (free: ${d.free_slots.join(", ")})` : "all slots used";
}

export function Devices(props: {
  devices: DeviceInfo[] | null;
  busySerials: Set<string>;
  demo: boolean;
  onDemoChange: (on: boolean) => void;
  onAttach: (model: string, count: number) => Promise<void>;
}) {
  const { devices, demo } = props;
  const [model, setModel] = useState("yubikey");
  const [count, setCount] = useState(6);
  const [attaching, setAttaching] = useState(false);
  const attach = async () => {
    setAttaching(true);
    try {
      await props.onAttach(model, count);
    } finally {
      setAttaching(false);
    }
  };
  return (
    <section id="screen-devices">
      <h2>Devices</h2>
      <div class="row">
        <label class="inline">
          <input
            id="demo-switch"
            type="checkbox"
            checked={demo}
            onChange={(e) => props.onDemoChange((e.currentTarget as HTMLInputElement).checked)}
          />
          Demo mode: emulated tokens
        </label>
      </div>
      {demo && (
        <div class="panel row" id="attach-panel">
          <label>
            Model
            <select
              id="emulator-model"
              value={model}
              onChange={(e) => setModel((e.currentTarget as HTMLSelectElement).value)}
            >
              <option value="yubikey">YubiKey 5 (OATH-HOTP slot)</option>
              <option value="nitrokey-pro">Nitrokey Pro</option>
              <option value="nitrokey-storage">Nitrokey Storage</option>
            </select>
          </label>
          <label>
            Count
            <input
              id="emulator-count"
              type="number"
              min={1}
              max={64}
              value={count}
              onInput={(e) => setCount(Number((e.currentTarget as HTMLInputElement).value))}
            />
          </label>
          <button id="attach" class="secondary" disabled={attaching || count < 1} onClick={attach}>
            Attach emulated tokens
          </button>
        </div>
      )}
      {devices === null ? (
        <p class="muted">Looking for tokens…</p>
      ) : devices.length === 0 ? (
        <p class="muted" id="no-devices">
          No token attached. Plug one in{demo ? ", or attach emulated tokens above" : ""}.
        </p>
      ) : (
        <table id="device-table">
          <thead>
            <tr>
              <th>Family</th>
              <th>Model</th>
              <th>Serial</th>
              <th>Firmware</th>
              <th>State</th>
            </tr>
          </thead>
          <tbody>
            {devices.map((d) => (
              <tr key={d.serial} data-serial={d.serial}>
                <td>{d.family}</td>
                <td>
                  {d.model}
                  {d.emulated && <span class="muted"> (emulated)</span>}
                </td>
                <td class="mono">{d.serial}</td>
                <td>{d.firmware}</td>
                <td>{deviceState(d, props.busySerials)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {devices !== null && (
        <p class="muted" id="device-count">
          {devices.length} token{devices.length === 1 ? "" : "s"} attached
        </p>
      )}
    </section>
  );
}
