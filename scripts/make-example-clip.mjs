#!/usr/bin/env node
// Writes examples/clip/: 12 frames (160×120) of a ball rolling across a striped scene, the sample input of
// README's commands. Deterministic: run it again and the same PNGs come out.
import { mkdirSync } from 'node:fs';
import sharp from 'sharp';

const W = 160,
  H = 120,
  N = 12;
mkdirSync('examples/clip', { recursive: true });
for (let i = 0; i < N; i++) {
  const x = 30 + i * 9,
    y = 70 - Math.round(12 * Math.sin((i / (N - 1)) * Math.PI));
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">
    <defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#6ea8e0"/><stop offset="1" stop-color="#d8ecf8"/></linearGradient></defs>
    <rect width="${W}" height="${H}" fill="url(#sky)"/>
    <rect y="84" width="${W}" height="36" fill="#5b8c3a"/>
    ${Array.from({ length: 8 }, (_, k) => `<rect x="${k * 20 + ((i * 3) % 20) - 20}" y="84" width="10" height="36" fill="#4a7a2e"/>`).join('')}
    <polygon points="110,84 130,50 150,84" fill="#8a6d4b"/>
    <circle cx="${x}" cy="${y}" r="13" fill="#d9452b"/><circle cx="${x - 4}" cy="${y - 4}" r="4" fill="#f4a08e"/>
  </svg>`;
  await sharp(Buffer.from(svg))
    .png({ compressionLevel: 9 })
    .toFile(`examples/clip/frame_${String(i + 1).padStart(3, '0')}.png`);
}
console.log(`wrote ${N} frames to examples/clip/`);
