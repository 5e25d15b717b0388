// Module hook for tests that run the examples: `import ... from 'coedit'` there resolves to
// this checkout's sources (tsx loads them), as it resolves to the package in an app.
export async function resolve(specifier, context, next) {
  if (specifier === 'coedit') return next(new URL('../../server/index.ts', import.meta.url).href, context)
  return next(specifier, context)
}
