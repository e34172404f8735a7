// The station window: a sidebar of screens, the live device list, and the batch run, which
// lives here so that it keeps streaming while the operator looks at another screen.

import { useEffect, useState } from "preact/hooks";
import {
  type BatchRequest,
  type CommandError,
  type DeviceEvent,
  type DeviceInfo,
  type ExportRecord,
  type ExportRequest,
  type Settings,
  type SettingsView,
  api,
  asCommandError,
} from "./api";
import {
  type RunState,
  applyProgress,
  failRun,
  finishRun,
  resumeRun,
  startRun,
} from "./run-state";
import { Devices } from "./screens/devices";
import { History } from "./screens/history";
import { NewBatch } from "./screens/new-batch";
import { Run } from "./screens/run";
import { SettingsScreen } from "./screens/settings";

export type Screen = "devices" | "new-batch" | "run" | "history" | "settings";

const SCREENS: [Screen, string][] = [
  ["devices", "Devices"],
  ["new-batch", "New batch"],
  ["run", "Run"],
  ["history", "History"],
  ["settings", "Settings"],
];

/** Errors the operator resolves with what the Settings screen shows or sets. */
const SETTINGS_CODES = ["passphrase_required", "wrong_passphrase", "master_key_lost"];

/** Applies a hotplug event to the device list. */
export function applyDeviceEvent(list: DeviceInfo[], e: DeviceEvent): DeviceInfo[] {
  const same = (d: DeviceInfo) => d.serial === e.device.serial && d.family === e.device.family;
  const rest = list.filter((d) => !same(d));
  return e.event === "arrived" ? [...rest, e.device] : rest;
}

export function App(props: { initialScreen?: Screen }) {
  const [screen, setScreen] = useState<Screen>(props.initialScreen ?? "devices");
  const [settings, setSettings] = useState<SettingsView | null>(null);
  const [devices, setDevices] = useState<DeviceInfo[] | null>(null);
  const [run, setRun] = useState<RunState | null>(null);
  const [runExports, setRunExports] = useState<ExportRecord[]>([]);
  const [historyKey, setHistoryKey] = useState(0);
  const [error, setError] = useState<CommandError | null>(null);

  const report = (e: unknown) => setError(asCommandError(e));

  const loadDevices = () => api.devices().then(setDevices, report);

  // Changes, then the list: listing once the watcher runs leaves no gap in which a token
  // could come or go unseen. A new subscription replaces the previous watcher.
  const followDevices = () => {
    api
      .watchDevices((e) => setDevices((list) => applyDeviceEvent(list ?? [], e)))
      .then(loadDevices, (e) => {
        report(e);
        loadDevices();
      });
  };

  useEffect(() => {
    api.settingsGet().then(setSettings, report);
    followDevices();
  }, []);

  const saveSettings = async (next: Settings, passphrase: string | null) => {
    try {
      setSettings(await api.settingsSet(next, passphrase));
      setError(null);
      // The station reopens with the new settings (e.g. after the passphrase was entered).
      followDevices();
      setHistoryKey((k) => k + 1);
      return true;
    } catch (e) {
      report(e);
      return false;
    }
  };

  const setDemo = (on: boolean) => {
    if (settings) saveSettings({ ...settings.settings, demo: on }, null);
  };

  const attach = async (model: string, count: number) => {
    try {
      const added = await api.attachEmulated(model, count);
      // The watcher reports them too; merging by serial keeps the list free of duplicates.
      setDevices((list) =>
        added.reduce((l, device) => applyDeviceEvent(l, { event: "arrived", device }), list ?? []),
      );
    } catch (e) {
      report(e);
    }
  };

  const provision = async (request: BatchRequest) => {
    try {
      const summary = await api.provision(request, (e) => setRun((r) => r && applyProgress(r, e)));
      setRun((r) => r && finishRun(r, summary));
      setRunExports(summary.exports);
    } catch (e) {
      setRun((r) => r && failRun(r, asCommandError(e)));
      if (asCommandError(e).code !== "cancelled") report(e);
    } finally {
      setHistoryKey((k) => k + 1);
    }
  };

  const startBatch = async (request: BatchRequest) => {
    setRun(startRun(request));
    setRunExports([]);
    setScreen("run");
    await provision(request);
  };

  // Re-running a batch by its name resumes it; its export (and password) is not repeated.
  const resume = async () => {
    if (!run) return;
    setRun((r) => r && resumeRun(r));
    await provision({ ...run.request, export: null });
  };

  const cancel = async () => {
    setRun((r) => r && { ...r, cancelling: true });
    try {
      await api.cancelRun();
    } catch (e) {
      report(e);
    }
  };

  const exportRun = async (request: ExportRequest) => {
    if (run?.batchId == null) return;
    try {
      const record = await api.exportBatch(String(run.batchId), request);
      setRunExports((list) => [...list, record]);
      setHistoryKey((k) => k + 1);
    } catch (e) {
      report(e);
    }
  };

  const running = run?.status === "running";
  const busy = new Set(running ? run!.rows.map((r) => r.serial) : []);

  return (
    <div class="shell">
      <nav class="screens">
        <h1>KeyProv Station</h1>
        {SCREENS.map(([id, label]) => (
          <button
            id={`nav-${id}`}
            key={id}
            class={screen === id ? "active" : ""}
            onClick={() => setScreen(id)}
          >
            {label}
            {id === "devices" && devices && <span class="badge">{devices.length}</span>}
            {id === "run" && running && <span class="badge">{run!.finished}/{run!.total}</span>}
          </button>
        ))}
      </nav>
      <main>
        {screen === "devices" && (
          <Devices
            devices={devices}
            busySerials={busy}
            demo={settings?.settings.demo ?? false}
            onDemoChange={setDemo}
            onAttach={attach}
          />
        )}
        {screen === "new-batch" && (
          <NewBatch
            deviceCount={devices?.length ?? 0}
            serverUrl={settings?.settings.server_url ?? null}
            running={running}
            onStart={startBatch}
          />
        )}
        {screen === "run" && (
          <Run
            run={run}
            exports={runExports}
            onCancel={cancel}
            onResume={resume}
            onExport={exportRun}
          />
        )}
        {screen === "history" && (
          <History
            serverUrl={settings?.settings.server_url ?? null}
            refreshKey={historyKey}
            onError={setError}
          />
        )}
        {screen === "settings" && <SettingsScreen view={settings} onSave={saveSettings} />}
      </main>
      {error && (
        <div class="toast" role="alert" id="error-toast">
          <div class="code">{error.code}</div>
          <div>{error.message}</div>
          <div class="row">
            {error.code === "master_key_lost" && (
              <div class="muted" id="master-key-lost-hint">
                Nothing was changed. Restore the master key file named above from your backup
                (it sits beside the station database; Settings shows which one), then try again.
              </div>
            )}
            {SETTINGS_CODES.includes(error.code) && (
              <button class="secondary" onClick={() => setScreen("settings")}>
                Open Settings
              </button>
            )}
            <button class="secondary" id="dismiss-error" onClick={() => setError(null)}>
              Dismiss
            </button>
          </div>
        </div>
      )}
    </div>
  );
}
