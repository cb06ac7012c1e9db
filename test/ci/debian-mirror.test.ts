// .ci/debian-mirror.sh finds the archive URI in the machine's own apt sources (deb822 and one-line forms), so
// the CI scripts that add backports or build a newer suite's chroot name no host themselves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function mirrorOf(files: Record<string, string>): { status: number | null; out: string; err: string } {
  const etc = mkdtempSync(join(tmpdir(), 'vidprior-apt-'));
  try {
    mkdirSync(join(etc, 'sources.list.d'));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(etc, name), text);
    const r = spawnSync('bash', ['.ci/debian-mirror.sh'], {
      encoding: 'utf8',
      env: { ...process.env, APT_ETC: etc, DEBIAN_CODENAME: 'bookworm' },
    });
    return { status: r.status, out: r.stdout.trim(), err: r.stderr };
  } finally {
    rmSync(etc, { recursive: true, force: true });
  }
}

test('deb822 sources: the main archive of the codename, not security, backports or third parties', () => {
  const r = mirrorOf({
    'sources.list.d/a-nodesource.sources': 'Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n',
    'sources.list.d/backports.sources': 'Types: deb\nURIs: http://other.example/debian\nSuites: bookworm-backports\n',
    'sources.list.d/debian.sources':
      'Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n' +
      'Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n',
  });
  assert.equal(r.status, 0, r.err);
  assert.equal(r.out, 'http://mirror.example/debian');
});

test('one-line sources.list (with options), and a clear failure when there is none', () => {
  const r = mirrorOf({
    'sources.list':
      '# comment\ndeb-src http://src.example/debian bookworm main\n' +
      'deb [arch=amd64 signed-by=/k.gpg] http://line.example/debian bookworm main\n',
  });
  assert.equal(r.status, 0, r.err);
  assert.equal(r.out, 'http://line.example/debian');
  const none = mirrorOf({ 'sources.list': 'deb http://x.example/ubuntu jammy main\n' });
  assert.equal(none.status, 1);
  assert.match(none.err, /no apt source for suite bookworm/);
});
