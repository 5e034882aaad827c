/**
 * The console's one stylesheet, served from `/console/assets/console.css` so the
 * Content-Security-Policy can forbid inline styles and scripts altogether.
 */
export const CONSOLE_CSS = `
:root { --ink: #1d2330; --muted: #5b6478; --line: #dde2ea; --bg: #f6f7f9; --card: #fff;
  --accent: #2f5bd3; --good: #1f7a4d; --bad: #b42318; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: var(--bg); }
a { color: var(--accent); }
header { background: #151b2c; color: #fff; padding: 0 24px; display: flex; align-items: center; gap: 24px; height: 52px; }
header .brand { font-weight: 700; letter-spacing: .5px; font-size: 16px; }
header nav { display: flex; gap: 4px; flex: 1; }
header nav a { color: #c9d2e8; text-decoration: none; padding: 6px 10px; border-radius: 6px; }
header nav a.active, header nav a:hover { background: #2a3350; color: #fff; }
header .who { color: #c9d2e8; display: flex; align-items: center; gap: 10px; }
header .who form { margin: 0; }
header .who button { background: transparent; color: #c9d2e8; border: 1px solid #3b4566; }
main { max-width: 1120px; margin: 24px auto; padding: 0 24px; }
h1 { font-size: 22px; margin: 0 0 16px; }
h2 { font-size: 16px; margin: 24px 0 10px; }
figure { margin: 0 0 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px; margin-bottom: 16px; }
.notice { border-left: 4px solid var(--good); }
.error { border-left: 4px solid var(--bad); }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
th, td { text-align: left; padding: 8px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef1f6; font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .4px; color: var(--muted); }
td code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; word-break: break-all; }
.status { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; background: #eef1f6; }
.status-approved, .status-issued, .status-used { background: #e3f4ea; color: var(--good); }
.status-denied, .status-revoked { background: #fde8e6; color: var(--bad); }
.status-pending { background: #fff4d6; color: var(--warn); }
.status-expired, .status-cancelled { background: #eceef2; color: var(--muted); }
form.filters { display: flex; flex-wrap: wrap; gap: 10px; align-items: end; }
label { display: flex; flex-direction: column; gap: 4px; font-size: 12px; color: var(--muted); }
input, select, textarea { font: inherit; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; background: #fff; color: var(--ink); }
textarea { width: 100%; min-height: 60px; }
button { font: inherit; padding: 7px 14px; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
.pager { display: flex; gap: 12px; margin-top: 12px; }
.muted { color: var(--muted); }
.grid { display: grid; grid-template-columns: 160px 1fr; gap: 6px 16px; }
.grid dt { color: var(--muted); }
.grid dd { margin: 0; }
ol.timeline { list-style: none; margin: 0; padding: 0; border-left: 2px solid var(--line); }
ol.timeline li { position: relative; margin: 0 0 14px 0; padding-left: 18px; }
ol.timeline li::before { content: ""; position: absolute; left: -7px; top: 5px; width: 12px; height: 12px; border-radius: 50%; background: var(--muted); }
ol.timeline li.good::before { background: var(--good); }
ol.timeline li.bad::before { background: var(--bad); }
ol.timeline li.warn::before { background: var(--warn); }
ol.timeline .when { color: var(--muted); font-size: 12px; }
ol.timeline .title { font-weight: 600; }
ol.timeline dl { margin: 4px 0 0; }
.reviews { display: flex; gap: 16px; flex-wrap: wrap; }
.reviews form { flex: 1; min-width: 280px; }
.ok { color: var(--good); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
svg.chart text { font-size: 11px; fill: var(--muted); }
.legend { display: flex; gap: 16px; font-size: 12px; color: var(--muted); }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; }
.swatch.issued { background: var(--good); }
.swatch.denied { background: var(--bad); }
.login { max-width: 420px; margin: 80px auto; }
.login input { width: 100%; }
`;
