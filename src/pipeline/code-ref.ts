import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const ENV_REFS = [
  "RUNTRAIL_CODE_REF",
  "GITHUB_SHA",
  "CI_COMMIT_SHA",
  "GIT_COMMIT",
  "SOURCE_VERSION",
];

const cache = new Map<string, string | null>();

/**
 * The commit the code runs from: `RUNTRAIL_CODE_REF` or a CI variable when set, else the HEAD
 * of the git checkout around `cwd`, read from `.git` without running git. Null outside git.
 */
export function detectCodeRef(
  cwd: string = process.cwd(),
  env: Readonly<Record<string, string | undefined>> = process.env,
): string | null {
  for (const name of ENV_REFS) {
    const value = env[name]?.trim();
    if (value) return value;
  }
  const start = resolve(cwd);
  if (!cache.has(start)) cache.set(start, readGitHead(start));
  return cache.get(start) ?? null;
}

function readGitHead(start: string): string | null {
  const gitDir = findGitDir(start);
  if (gitDir === null) return null;
  try {
    const head = readFileSync(join(gitDir, "HEAD"), "utf8").trim();
    if (!head.startsWith("ref: ")) return /^[0-9a-f]{40,64}$/.test(head) ? head : null;
    const ref = head.slice(5);
    const commonDir = readCommonDir(gitDir);
    for (const dir of [gitDir, commonDir]) {
      const loose = join(dir, ref);
      if (existsSync(loose)) return readFileSync(loose, "utf8").trim();
    }
    const packed = join(commonDir, "packed-refs");
    if (existsSync(packed)) {
      for (const line of readFileSync(packed, "utf8").split("\n")) {
        const [sha, name] = line.split(" ");
        if (name === ref && sha) return sha;
      }
    }
  } catch {
    // An unreadable checkout has no code ref.
  }
  return null;
}

function findGitDir(start: string): string | null {
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, ".git");
    if (existsSync(candidate)) {
      if (statSync(candidate).isDirectory()) return candidate;
      // A worktree or submodule: `.git` is a file naming the real folder.
      const pointer = /^gitdir: (.+)$/m.exec(readFileSync(candidate, "utf8"))?.[1];
      return pointer ? resolve(dir, pointer.trim()) : null;
    }
    if (dirname(dir) === dir) return null;
  }
}

function readCommonDir(gitDir: string): string {
  const file = join(gitDir, "commondir");
  return existsSync(file) ? resolve(gitDir, readFileSync(file, "utf8").trim()) : gitDir;
}
