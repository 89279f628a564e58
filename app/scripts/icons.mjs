// Draws the app icons (a seedling on the console's blue) with pngjs into
// static/; run once with `npm run icons` and commit the PNGs.
import { writeFileSync } from 'node:fs';
import { PNG } from 'pngjs';

function draw(size) {
  const png = new PNG({ width: size, height: size });
  const set = (x, y, [r, g, b]) => {
    const i = (y * size + x) * 4;
    png.data[i] = r; png.data[i + 1] = g; png.data[i + 2] = b; png.data[i + 3] = 255;
  };
  const blue = [11, 92, 173], green = [126, 211, 33], white = [255, 255, 255];
  const u = size / 100;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const X = x / u, Y = y / u;
      let c = blue;
      // stem
      if (Math.abs(X - 50) < 3.2 && Y > 46 && Y < 76) c = white;
      // left leaf: ellipse tilted
      const lx = X - 37, ly = Y - 42;
      const a = Math.PI / 5;
      const l1 = (lx * Math.cos(a) + ly * Math.sin(a)) / 15, l2 = (-lx * Math.sin(a) + ly * Math.cos(a)) / 8;
      if (l1 * l1 + l2 * l2 < 1) c = green;
      const rx = X - 63, ry = Y - 36;
      const r1 = (rx * Math.cos(-a) + ry * Math.sin(-a)) / 17, r2 = (-rx * Math.sin(-a) + ry * Math.cos(-a)) / 9;
      if (r1 * r1 + r2 * r2 < 1) c = green;
      // ground
      if (Y > 74 && Y < 80 && Math.abs(X - 50) < 24) c = white;
      set(x, y, c);
    }
  }
  return PNG.sync.write(png, { colorType: 2 });
}

for (const size of [192, 512]) writeFileSync(new URL(`../static/icon-${size}.png`, import.meta.url), draw(size));
