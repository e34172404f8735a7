// Settings: the database location, the DSKPP server URL and the CA it must chain to, and
// the master-key passphrase (kept in memory by the app, never on disk).

import { useEffect, useState } from "preact/hooks";
import type { Settings, SettingsView } from "../api";

export function SettingsScreen(props: {
  view: SettingsView | null;
  onSave: (settings: Settings, passphrase: string | null) => Promise<boolean>;
}) {
  const { view } = props;
  const [draft, setDraft] = useState<Settings | null>(view?.settings ?? null);
  const [passphrase, setPassphrase] = useState("");
  const [saved, setSaved] = useState(false);
  useEffect(() => setDraft(view?.settings ?? null), [view]);
  if (view === null || draft === null) {
    return (
      <section id="screen-settings">
        <h2>Settings</h2>
        <p class="muted">Loading…</p>
      </section>
    );
  }
  const text = (e: Event) => (e.currentTarget as HTMLInputElement).value;
  const orNull = (s: string) => (s.trim() === "" ? null : s.trim());
  const set = (patch: Partial<Settings>) => {
    setSaved(false);
    setDraft({ ...draft, ...patch });
  };
  const save = async () => {
    const ok = await props.onSave(draft, passphrase === "" ? null : passphrase);
    if (ok) setPassphrase("");
    setSaved(ok);
  };
  const forget = async () => {
    if (await props.onSave(draft, "")) setSaved(true);
  };
  return (
    <section id="screen-settings">
      <h2>Settings</h2>
      <fieldset>
        <legend>Station database</legend>
        <div class="row">
          <label>
            SQLite file (empty: the default, shared with the keyprov CLI)
            <input
              id="db-path"
              class="wide"
              value={draft.db_path ?? ""}
              disabled={view.db_from_env}
              onInput={(e) => set({ db_path: orNull(text(e)) })}
            />
          </label>
        </div>
        <p class="muted" id="db-effective">
          In use: {view.effective_db_path ?? "the default location"}
          {view.db_from_env && " (set by KEYPROV_DB)"}
        </p>
        <p class="muted">Exports without a file name go to {view.exports_dir}</p>
      </fieldset>
      <fieldset>
        <legend>Central DSKPP server</legend>
        <div class="row">
          <label>
            Server URL
            <input
              id="settings-server-url"
              class="wide"
              placeholder="https://provisioning.example.org/dskpp"
              value={draft.server_url ?? ""}
              onInput={(e) => set({ server_url: orNull(text(e)) })}
            />
          </label>
          <label>
            Trusted CA (PEM file; empty: system roots)
            <input
              id="settings-ca"
              class="wide"
              value={draft.server_ca_pem ?? ""}
              onInput={(e) => set({ server_ca_pem: orNull(text(e)) })}
            />
          </label>
        </div>
        <p class="muted" id="tls-in-force">
          Trusted now: {view.tls_trust_in_force ?? "the system roots"}. A changed CA file applies
          from the next start.
        </p>
      </fieldset>
      <fieldset>
        <legend>Master key</legend>
        <div class="row">
          <label>
            Passphrase {view.passphrase_set ? "(entered for this session)" : "(not entered)"}
            <input
              id="passphrase"
              type="password"
              autocomplete="off"
              value={passphrase}
              onInput={(e) => {
                setSaved(false);
                setPassphrase(text(e));
              }}
            />
          </label>
          {view.passphrase_set && (
            <button id="forget-passphrase" class="secondary" onClick={forget}>
              Forget passphrase
            </button>
          )}
        </div>
      </fieldset>
      <fieldset>
        <legend>Demo</legend>
        <label class="inline">
          <input
            id="settings-demo"
            type="checkbox"
            checked={draft.demo}
            onChange={(e) => set({ demo: (e.currentTarget as HTMLInputElement).checked })}
          />
          offer emulated tokens (stored in {view.emulator_dir})
        </label>
      </fieldset>
      <button id="save-settings" class="primary" onClick={save}>
        Save
      </button>
      {saved && (
        <span class="ok" id="settings-saved">
          {" "}
          Saved.
        </span>
      )}
    </section>
  );
}
