import { render, screen } from "@testing-library/preact";
import { describe, expect, it } from "vitest";
import type { ExportRecord } from "../api";
import { ExportList } from "./run";

const record = (patch: Partial<ExportRecord> = {}): ExportRecord => ({
  path: "/data/exports/desk-linotp.pskcxml",
  sha256: "ab".repeat(32),
  protection: "key",
  target: "linotp",
  keys: 2,
  created_at: "2026-12-03T14:02:00Z",
  renamed_serials: [],
  ...patch,
});

describe("Export list", () => {
  it("names the serials a profile renamed, as the validation server will know them", () => {
    render(
      <ExportList
        exports={[
          record({
            renamed_serials: [
              { device: "10000001", written: "UBOH10000001" },
              { device: "10000002", written: "UBOH10000002" },
            ],
          }),
        ]}
      />,
    );
    expect(screen.getByText("serial 10000001 is UBOH10000001 in this file")).toBeTruthy();
    expect(screen.getByText("serial 10000002 is UBOH10000002 in this file")).toBeTruthy();
  });

  it("adds nothing for an export that kept every serial", () => {
    render(<ExportList exports={[record({ target: "generic" })]} />);
    expect(document.querySelector(".renamed")).toBeNull();
    expect(screen.getByText("/data/exports/desk-linotp.pskcxml")).toBeTruthy();
  });
});
