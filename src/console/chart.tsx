import type { Activity } from "../service/activity.js";

const WIDTH = 1040;
const HEIGHT = 160;
const PAD_LEFT = 36;
const PAD_BOTTOM = 22;
const PAD_TOP = 8;

/**
 * Issuance and denials per hour as server-rendered SVG: no script, no inline
 * style, so it draws under the console's strict Content-Security-Policy and
 * without JavaScript. Colours are presentation attributes.
 */
export function ActivityChart(props: { activity: Activity }) {
  const { activity } = props;
  const buckets = activity.issued.length;
  const max = Math.max(1, ...activity.issued, ...activity.denied);
  const plotH = HEIGHT - PAD_TOP - PAD_BOTTOM;
  const slot = (WIDTH - PAD_LEFT) / buckets;
  const bar = Math.max(2, slot / 2 - 2);
  const y = (n: number) => PAD_TOP + plotH - (n / max) * plotH;
  const label = (i: number) =>
    new Date(activity.start + i * activity.bucketMs).toISOString().slice(11, 16);
  const totalIssued = activity.issued.reduce((a, b) => a + b, 0);
  const totalDenied = activity.denied.reduce((a, b) => a + b, 0);
  return (
    <figure class="card" aria-label="Issuance and denials over time">
      <div class="legend">
        <span>
          <span class="swatch issued" />
          issued: {totalIssued}
        </span>
        <span>
          <span class="swatch denied" />
          denied: {totalDenied}
        </span>
        <span>last {Math.round((buckets * activity.bucketMs) / 3_600_000)} h, per hour (UTC)</span>
        {activity.capped ? <span>(counts capped)</span> : null}
      </div>
      <svg
        class="chart"
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        width="100%"
        role="img"
        aria-label={`${totalIssued} issued, ${totalDenied} denied`}
      >
        <line x1={PAD_LEFT} y1={y(0)} x2={WIDTH} y2={y(0)} stroke="#dde2ea" />
        <line x1={PAD_LEFT} y1={y(max)} x2={WIDTH} y2={y(max)} stroke="#eef1f6" />
        <text x={PAD_LEFT - 6} y={y(max) + 4} text-anchor="end">
          {max}
        </text>
        <text x={PAD_LEFT - 6} y={y(0) + 4} text-anchor="end">
          0
        </text>
        {activity.issued.map((n, i) => {
          const x = PAD_LEFT + i * slot + 1;
          const d = activity.denied[i] ?? 0;
          return (
            <g>
              <title>{`${label(i)}: ${n} issued, ${d} denied`}</title>
              <rect x={x} y={y(n)} width={bar} height={y(0) - y(n)} fill="#1f7a4d" />
              <rect x={x + bar + 1} y={y(d)} width={bar} height={y(0) - y(d)} fill="#b42318" />
              {i % 3 === 0 ? (
                <text x={x} y={HEIGHT - 6}>
                  {label(i)}
                </text>
              ) : null}
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
