import { fireEvent, render, screen } from "@testing-library/preact";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { BatchRequest } from "../api";
import { NewBatch } from "./new-batch";

afterEach(() => vi.restoreAllMocks());

function setup(deviceCount = 6, serverUrl: string | null = null) {
  const onStart = vi.fn<(r: BatchRequest) => void>();
  render(
    <NewBatch deviceCount={deviceCount} serverUrl={serverUrl} running={false} onStart={onStart} />,
  );
  return onStart;
}

const input = (sel: string, value: string) =>
  fireEvent.input(document.querySelector(sel)!, { target: { value } });
const change = (sel: string, value: string) =>
  fireEvent.change(document.querySelector(sel)!, { target: { value } });

describe("New batch", () => {
  it("starts a local HOTP batch over all attached tokens by default", () => {
    const onStart = setup();
    input("#batch-name", "line-3");
    fireEvent.click(screen.getByText("Start batch"));
    expect(onStart).toHaveBeenCalledWith({
      name: "line-3",
      otp: "hotp",
      digits: 6,
      period: 30,
      count: null,
      mode: { kind: "local" },
      export: null,
      operator: null,
      hash: "sha1",
    });
    expect(document.querySelector("#batch-period")).toBeNull();
  });

  it("builds a TOTP batch for a central server with authentication codes", () => {
    const onStart = setup(6, "https://prov.example.org/dskpp");
    input("#batch-name", "remote");
    change("#batch-otp", "totp");
    change("#batch-digits", "8");
    change("#batch-hash", "sha256");
    input("#batch-period", "60");
    fireEvent.click(document.querySelector("#mode-central")!);
    expect((document.querySelector("#server-url") as HTMLInputElement).value).toBe(
      "https://prov.example.org/dskpp",
    );
    input("#auth-codes", "AC1, AC2\nAC3");
    input("#batch-count", "3");
    input("#batch-operator", "kim");
    fireEvent.click(screen.getByText("Start batch"));
    expect(onStart.mock.calls[0][0]).toEqual({
      name: "remote",
      otp: "totp",
      digits: 8,
      period: 60,
      count: 3,
      mode: {
        kind: "central",
        server_url: "https://prov.example.org/dskpp",
        auth_codes: ["AC1", "AC2", "AC3"],
      },
      export: null,
      operator: "kim",
      hash: "sha256",
    });
  });

  it("adds a password-protected export, refusing mismatched passwords", () => {
    const onStart = setup();
    fireEvent.click(document.querySelector("#export-on-finish")!);
    input("#nb-password", "s3cret-pass");
    input("#nb-confirm", "s3cret-pasS");
    fireEvent.click(screen.getByText("Start batch"));
    expect(screen.getByText("the two passwords differ")).toBeTruthy();
    expect(onStart).not.toHaveBeenCalled();
    input("#nb-confirm", "s3cret-pass");
    input("#nb-path", "/srv/out/line3.pskcxml");
    fireEvent.click(screen.getByText("Start batch"));
    expect(onStart.mock.calls[0][0].export).toEqual({
      path: "/srv/out/line3.pskcxml",
      protection: { kind: "password", password: "s3cret-pass" },
      target: "generic",
    });
  });

  it("accepts a pre-shared key or a certificate, and checks the key", () => {
    const onStart = setup();
    fireEvent.click(document.querySelector("#export-on-finish")!);
    change("#nb-protection", "key");
    input("#nb-key", "00112233");
    fireEvent.click(screen.getByText("Start batch"));
    expect(screen.getByText(/16, 24 or 32 bytes of hex/)).toBeTruthy();
    input("#nb-key", "000102030405060708090a0b0c0d0e0f");
    change("#nb-target", "privacyidea");
    fireEvent.click(screen.getByText("Start batch"));
    expect(onStart.mock.calls[0][0].export).toEqual({
      path: "",
      protection: { kind: "key", key_hex: "000102030405060708090a0b0c0d0e0f" },
      target: "privacyidea",
    });
    change("#nb-protection", "certificate");
    input("#nb-cert", "/etc/keyprov/recipient.pem");
    fireEvent.click(screen.getByText("Start batch"));
    expect(onStart.mock.calls[1][0].export!.protection).toEqual({
      kind: "certificate",
      cert_pem: "/etc/keyprov/recipient.pem",
    });
  });

  it("refuses a central batch without a server URL and a bad count", () => {
    const onStart = setup();
    fireEvent.click(document.querySelector("#mode-central")!);
    fireEvent.click(screen.getByText("Start batch"));
    expect(screen.getByText(/server URL must start with https/)).toBeTruthy();
    fireEvent.click(document.querySelector("#mode-local")!);
    input("#batch-count", "0");
    fireEvent.click(screen.getByText("Start batch"));
    expect(screen.getByText(/count must be a positive whole number/)).toBeTruthy();
    expect(onStart).not.toHaveBeenCalled();
  });

  it("cannot start without tokens", () => {
    setup(0);
    expect((screen.getByText("Start batch") as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByText(/attach tokens first/)).toBeTruthy();
  });
});
