import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { detectCodeRef } from "../../src/pipeline/code-ref.js";
import { tempDir } from "../helpers/temp-dir.js";
import { commit, git, gitStatus } from "./_fixtures.js";

/** A fresh repository with one commit on `main`. */
function repository(): string {
  const dir = tempDir();
  git(dir, "-c", "init.defaultBranch=main", "init", "-q");
  writeFileSync(join(dir, "pipeline.py"), "print('hello')\n");
  git(dir, "add", "pipeline.py");
  commit(dir, "first");
  return dir;
}

/** A folder under the repository, so each call has a cwd of its own (results are cached per cwd). */
function subfolder(repo: string, name: string): string {
  const dir = join(repo, name, "deeper");
  mkdirSync(dir, { recursive: true });
  return dir;
}

describe("detectCodeRef", () => {
  it("takes RUNTRAIL_CODE_REF when set, trimmed, even inside a git checkout", () => {
    const repo = repository();
    expect(detectCodeRef(repo, { RUNTRAIL_CODE_REF: "  release-2026.11  " })).toBe(
      "release-2026.11",
    );
  });

  it("prefers RUNTRAIL_CODE_REF over the CI variables, and takes those when it is not set", () => {
    const dir = tempDir();
    expect(detectCodeRef(dir, { RUNTRAIL_CODE_REF: "mine", GITHUB_SHA: "ci" })).toBe("mine");
    expect(detectCodeRef(dir, { GITHUB_SHA: "abc123" })).toBe("abc123");
    expect(detectCodeRef(dir, { CI_COMMIT_SHA: "def456" })).toBe("def456");
    expect(detectCodeRef(dir, { RUNTRAIL_CODE_REF: "   ", GIT_COMMIT: "0a1b2c" })).toBe("0a1b2c");
  });

  it("reads the HEAD commit of the git checkout around the folder", () => {
    const repo = repository();
    const head = git(repo, "rev-parse", "HEAD");
    expect(head).toMatch(/^[0-9a-f]{40}$/);
    expect(detectCodeRef(repo, {})).toBe(head);
    expect(detectCodeRef(subfolder(repo, "src"), {})).toBe(head);
  });

  it("follows the branch to its latest commit", () => {
    const repo = repository();
    writeFileSync(join(repo, "second.txt"), "2\n");
    git(repo, "add", "second.txt");
    commit(repo, "second");
    expect(detectCodeRef(repo, {})).toBe(git(repo, "rev-parse", "HEAD"));
    expect(detectCodeRef(repo, {})).not.toBe(git(repo, "rev-parse", "HEAD~1"));
  });

  it("still reads HEAD once git has packed the branch refs", () => {
    const repo = repository();
    const head = git(repo, "rev-parse", "HEAD");
    git(repo, "pack-refs", "--all");
    expect(existsSync(join(repo, ".git", "refs", "heads", "main"))).toBe(false);
    expect(existsSync(join(repo, ".git", "packed-refs"))).toBe(true);
    expect(detectCodeRef(subfolder(repo, "packed"), {})).toBe(head);
  });

  it("reads a detached HEAD", () => {
    const repo = repository();
    writeFileSync(join(repo, "second.txt"), "2\n");
    git(repo, "add", "second.txt");
    commit(repo, "second");
    git(repo, "checkout", "-q", "--detach", "HEAD~1");
    const head = git(repo, "rev-parse", "HEAD");
    expect(detectCodeRef(subfolder(repo, "detached"), {})).toBe(head);
  });

  it("reads the HEAD of a linked worktree, not that of the main checkout", () => {
    const repo = repository();
    const worktree = join(tempDir(), "feature");
    git(repo, "worktree", "add", "-q", "-b", "feature", worktree);
    writeFileSync(join(worktree, "feature.txt"), "f\n");
    git(worktree, "add", "feature.txt");
    commit(worktree, "feature work");
    const head = git(worktree, "rev-parse", "HEAD");
    expect(head).not.toBe(git(repo, "rev-parse", "HEAD"));
    expect(detectCodeRef(worktree, {})).toBe(head);
  });

  it("is null in a repository without commits yet", () => {
    const dir = tempDir();
    git(dir, "-c", "init.defaultBranch=main", "init", "-q");
    expect(detectCodeRef(dir, {})).toBeNull();
  });

  it("is null in a folder outside any git checkout", () => {
    const dir = tempDir();
    // Make sure the temp folder really is outside any checkout, else this test proves nothing.
    expect(gitStatus(dir, "rev-parse", "--show-toplevel")).not.toBe(0);
    expect(detectCodeRef(dir, {})).toBeNull();
  });
});
