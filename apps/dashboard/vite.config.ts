import { defineConfig } from 'vite';

export default defineConfig({
  root: 'web',
  // Relative asset URLs, so the page works wherever the control plane mounts it.
  base: './',
  build: {
    outDir: '../dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
  },
});
