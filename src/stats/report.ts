// placeholder replaced below
import type { Model } from './model';
export function renderReport(model: Model): string {
  return `<!doctype html><pre>${JSON.stringify(model).replace(/</g, '&lt;')}</pre>`;
}
