// One tfjs instance for the whole process: the node package reaches tfjs through here.
import * as tf from '@tensorflow/tfjs'
export default tf
