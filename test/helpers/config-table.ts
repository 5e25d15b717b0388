/**
 * The README's configuration table, generated from SERVE_OPTIONS. config.test.ts checks
 * the README holds exactly this; regenerate with `node --import tsx test/helpers/config-table.ts`.
 */
import { fileURLToPath } from 'node:url'
import { SERVE_OPTIONS, formatDefault } from '../../server/config.js'

export function configTable(): string {
  const rows = SERVE_OPTIONS.map((o) => {
    const flag = o.kind === 'boolean' ? `\`--${o.flag}\` / \`--no-${o.flag}\`` : `\`--${o.flag}\``
    return `| ${flag} | \`${o.env}\` | \`${formatDefault(o)}\` | ${o.help.replace(/\|/g, '\\|')} |`
  })
  return ['| flag | env | default | meaning |', '|---|---|---|---|', ...rows].join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(configTable())
