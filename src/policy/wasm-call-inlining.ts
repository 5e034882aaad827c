import { setFlagsFromString } from "node:v8";

// Node 20's V8 (11.3) crashes the whole process ("Fatal error … unreachable code"
// in Deoptimizer::DoComputeBuiltinContinuation) when TurboFan has inlined a call
// from JavaScript into the Cedar WebAssembly module and that code later
// deoptimizes. Under load (`npm run bench`) it took `writ serve` down in most
// runs; with inlining off, none crashed. A broker that falls over under load is
// worse than one a few microseconds slower per decision, so the inlining is
// turned off before any policy is evaluated. The flag only steers what the
// optimizing compiler does next, so setting it at run time is enough. It is set
// only on the V8 versions known to have the flag (Node 20 and 22).
const v8Major = Number(process.versions.v8.split(".")[0]);
if (v8Major >= 11 && v8Major <= 12) setFlagsFromString("--no-turbo-inline-js-wasm-calls");
