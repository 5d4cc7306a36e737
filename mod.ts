export * from "./src/rng.ts";
