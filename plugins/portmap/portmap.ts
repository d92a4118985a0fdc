import { type CniPlugin, CtnetError, ErrorCode } from '../../core/index.js';
import { portmapSchema } from './schema.js';

const notYet = async (): Promise<never> => {
  throw new CtnetError(ErrorCode.internal, 'the portmap plugin is not implemented yet');
};

export const portmapPlugin: CniPlugin = {
  name: 'portmap',
  schema: portmapSchema,
  add: notYet,
  del: notYet,
};
